// @dhta/models: public API (see README.md).
export {};
