export const WEB_DIST: string;
export function newestSource(): number;
export function isStale(): boolean;
export function buildWeb(outDir?: string): Promise<{ outDir: string; inputs: string[]; nodeOnly: string[] }>;
