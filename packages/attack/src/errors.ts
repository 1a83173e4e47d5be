// The attack package's error: a code for programs, a message that says what was expected, what was found
// and what to do.

export type AttackErrorCode = 'BAD_OPTION' | 'BAD_INPUT' | 'NO_TARGET' | 'TOO_FEW_TARGETS' | 'INTERNAL';

export class AttackError extends Error {
  readonly code: AttackErrorCode;
  constructor(code: AttackErrorCode, message: string) {
    super(message);
    this.name = 'AttackError';
    this.code = code;
  }
}
