/**
 * Storage buffers pooled by size class (four classes per octave, so at most ~19% waste) so that training
 * and attack loops allocate nothing after their first iteration.
 */
export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly device: GPUDevice;
  private readonly usage: number;
  private liveBytes = 0;
  private pooledBytes = 0;

  constructor(device: GPUDevice, usage: number) {
    this.device = device;
    this.usage = usage;
  }

  static sizeClass(bytes: number): number {
    if (bytes <= 256) return 256;
    const octave = 2 ** Math.floor(Math.log2(bytes));
    const step = Math.max(256, octave / 4);
    return Math.ceil(bytes / step) * step;
  }

  acquire(bytes: number): GPUBuffer {
    const size = BufferPool.sizeClass(bytes);
    const list = this.free.get(size);
    const reused = list?.pop();
    if (reused) {
      this.pooledBytes -= size;
      this.liveBytes += size;
      return reused;
    }
    const buffer = this.device.createBuffer({ size, usage: this.usage });
    this.liveBytes += size;
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    const size = buffer.size;
    let list = this.free.get(size);
    if (!list) {
      list = [];
      this.free.set(size, list);
    }
    list.push(buffer);
    this.liveBytes -= size;
    this.pooledBytes += size;
  }

  /** Destroys pooled (unused) buffers, e.g. between benchmark cases. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.pooledBytes = 0;
  }

  stats(): { liveBytes: number; pooledBytes: number } {
    return { liveBytes: this.liveBytes, pooledBytes: this.pooledBytes };
  }
}
