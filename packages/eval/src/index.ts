// @dhta/eval: public API (see README.md).
export {};
