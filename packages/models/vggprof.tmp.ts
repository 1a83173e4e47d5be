import { CpuImageNetwork, initWeights, vgg11 } from './src/index.ts';
const spec = vgg11(64, { size: 224 });
const net = await CpuImageNetwork.create(spec, initWeights(spec, 1));
const cpu = net.cpu;
const R: Record<string, number> = {};
const orig = cpu.run.bind(cpu);
(cpu as any).run = (r: string, a: number[], t: number, al?: number) => { const s = performance.now(); orig(r as any, a, t, al); const k = r === 'gemm' ? `gemm K=${a[4]} m=${a[3]} n=${t}` : r; R[k] = (R[k] ?? 0) + performance.now() - s; };
const n = 4;
const x = Float32Array.from({ length: n * net.inputSize }, () => Math.random());
let tot = 0;
for (let it = 0; it < 3; it++) {
  if (it === 1) { for (const k in R) R[k] = 0; tot = 0; }
  net.resetStack();
  const t = performance.now();
  const { output, tape } = net.forward(cpu.upload(net.normalize(x, n)), n, { tape: true });
  net.backward(tape!, cpu.upload(new Float32Array(n * 64).fill(0.01)));
  tot += performance.now() - t;
}
let acc = 0;
for (const [k, v] of Object.entries(R).sort((a, b) => b[1] - a[1])) { acc += v; if (v / 2 > 20) console.log(k.padEnd(30), (v / 2).toFixed(1), 'ms'); }
console.log('other', ((tot - acc) / 2).toFixed(1), 'total', (tot / 2).toFixed(1), 'ms; MB', (cpu.used / 2 ** 20).toFixed(0));
net.destroy();
