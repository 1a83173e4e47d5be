// @dhta/models: public API (see README.md).
export type * from './types.js';
