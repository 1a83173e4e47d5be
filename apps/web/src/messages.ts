// Messages between the page (main.ts) and its worker (worker.ts), which holds the network and runs encodes and
// attacks off the page's thread, so that the page stays responsive and can stop a run.
import type { AttackMethod } from '@dhta/attack';

export type EngineChoice = 'auto' | 'webgpu' | 'wasm';

export interface AttackSettings {
  method: AttackMethod;
  iterations: number;
  eps: number;
  epsSpace: 'normalized' | 'pixel';
  seed: number;
  progressEvery: number;
}

export type ToWorker =
  | {
      type: 'open';
      id: number;
      specUrl: string;
      weightsUrl: string;
      engine: EngineChoice;
      threads: number | null;
    }
  | { type: 'encode'; id: number; pixels: Float32Array; n: number }
  | {
      type: 'attack';
      id: number;
      /** Queries (n x inputSize), pixels in [0, 1]. */
      pixels: Float32Array;
      n: number;
      queryIds: number[];
      /** n x bits ±1 (DHTA, P2P); null for HAG and Noise. */
      anchors: Int8Array | null;
      settings: AttackSettings;
      /** Int32Array over a SharedArrayBuffer: the page sets element 0 to 1 to stop the run. */
      stop: Int32Array;
    };

export type FromWorker =
  | { type: 'opened'; id: number; engine: 'webgpu' | 'wasm'; description: string; bits: number }
  | { type: 'encoded'; id: number; codes: Int8Array; features: Float32Array; seconds: number }
  | {
      type: 'progress';
      id: number;
      iteration: number;
      iterations: number;
      /** f(x + delta) of the first query at this iteration (bits). */
      features: Float32Array;
      meanDistance: number;
      queryIterationsPerSecond: number;
    }
  | {
      type: 'attacked';
      id: number;
      adversarial: Float32Array;
      codes: Int8Array;
      anchors: Int8Array;
      iterations: number;
      seconds: number;
    }
  | { type: 'stopped'; id: number }
  | { type: 'error'; id: number; message: string };
