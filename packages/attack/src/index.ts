// @dhta/attack: public API (see README.md).
export {};
