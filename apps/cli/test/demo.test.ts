import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { DEMO_FULL, DEMO_QUICK, demoSettings, PAPER_EPS, registerDemo } from '../src/demo.js';

function demoHelp(): string {
  const program = new Command().exitOverride();
  registerDemo(program);
  const cmd = program.commands.find((c) => c.name() === 'demo');
  expect(cmd).toBeDefined();
  // Wide, so that each option's help stays on one line.
  cmd!.configureHelp({ helpWidth: 1000 });
  return cmd!.helpInformation();
}

describe('dhta demo', () => {
  it('--help shows the settings the demo runs, not the attack command defaults', () => {
    const help = demoHelp();
    const line = (flag: string) => help.split('\n').find((l) => l.trimStart().startsWith(flag)) ?? '';
    expect(line('--iters')).toMatch(
      new RegExp(`default ${DEMO_QUICK.iterations}; ${DEMO_FULL.iterations} with --full`),
    );
    expect(line('--iters')).not.toMatch(/2000 for image models/);
    expect(line('--eps <')).toMatch(new RegExp(`default ${DEMO_QUICK.eps} in pixels;`));
    expect(line('--eps <')).not.toMatch(/default 0\.032\)/);
    expect(line('--eps-space')).toMatch(/'pixel'.*\(default\)/);
    expect(line('--queries')).toMatch(new RegExp(`default ${DEMO_QUICK.queries};`));
    expect(line('--data')).toMatch(new RegExp(`default: "${DEMO_QUICK.data}"`));
    expect(line('--full')).toMatch(/100 queries, 2000 iterations, eps 0\.032 in the normalised space/);
    expect(line('--paper-eps')).toMatch(/0\.032/);
    // The description says what runs and why.
    expect(help).toMatch(
      new RegExp(
        `zoo/${DEMO_QUICK.data}-32 .*${DEMO_QUICK.queries} queries .*${DEMO_QUICK.iterations} iterations at eps ${DEMO_QUICK.eps} in pixels`,
        's',
      ),
    );
    expect(help).toMatch(/moves no code of these small models/);
  });

  it('runs what the help says: the demo setting, the full one and the paper eps one flag away', () => {
    expect(demoSettings({})).toEqual({
      data: DEMO_QUICK.data,
      queries: DEMO_QUICK.queries,
      iterations: DEMO_QUICK.iterations,
      eps: DEMO_QUICK.eps,
      epsSpace: 'pixel',
      setting: 'demo',
    });
    expect(demoSettings({ full: true })).toEqual({
      data: DEMO_QUICK.data,
      queries: 100,
      iterations: 2000,
      eps: PAPER_EPS.eps,
      epsSpace: 'normalized',
      setting: 'full',
    });
    expect(demoSettings({ paperEps: true })).toMatchObject({
      queries: DEMO_QUICK.queries,
      iterations: DEMO_QUICK.iterations,
      eps: 0.032,
      epsSpace: 'normalized',
      setting: 'paper-eps',
    });
    // The paper's scale at the demo's budget; a given eps is in pixels unless told otherwise.
    expect(demoSettings({ full: true, eps: 0.1 })).toMatchObject({
      queries: 100,
      iterations: 2000,
      eps: 0.1,
      epsSpace: 'pixel',
      setting: 'custom',
    });
    expect(demoSettings({ data: 'mnist', queries: 5, iters: 7 })).toMatchObject({
      data: 'mnist',
      queries: 5,
      iterations: 7,
      eps: DEMO_QUICK.eps,
    });
    expect(() => demoSettings({ paperEps: true, eps: 0.2 })).toThrow(/--paper-eps sets eps itself/);
  });
});
