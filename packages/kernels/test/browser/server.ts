// A local http server for the browser tests: serves a few in-memory files with the headers that make the
// page cross-origin isolated (COOP/COEP), which SharedArrayBuffer and so the WebAssembly engine's threads need.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ServedFile {
  type: string;
  body: string | Uint8Array;
}

export interface TestServer {
  url: string;
  /** Paths asked for that were not served. */
  missing: string[];
  close(): Promise<void>;
}

export async function serve(files: Record<string, ServedFile>): Promise<TestServer> {
  const missing: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const file = files[path];
    const headers = {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'Cache-Control': 'no-store',
    };
    if (!file) {
      if (path !== '/favicon.ico') missing.push(path);
      res.writeHead(404, headers).end();
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': file.type }).end(file.body);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    missing,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}
