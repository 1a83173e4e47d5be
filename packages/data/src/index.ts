// @dhta/data: public API (see README.md).
export {};
