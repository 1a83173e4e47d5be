// @dhta/attack: anchor codes, DHTA / P2P / HAG / Noise, schedules, constraints (see README.md).

export * from './anchor.js';
export * from './attack.js';
export * from './errors.js';
export { type ReferenceAttackResult, type ReferenceModel, referenceAttack } from './reference.js';
export * from './sampling.js';
export * from './schedule.js';
