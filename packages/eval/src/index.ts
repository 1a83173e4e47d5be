// @dhta/eval: public API (see README.md).
export {
  type CodeArray,
  codeCount,
  INDEX_MIN_BITS,
  labelClasses,
  oneHot,
  packCodes,
  sharesLabel,
} from './codes.ts';
export { RetrievalDatabase, type RetrievalDatabaseOptions } from './database.ts';
export { EvaluationError, type EvaluationErrorCode } from './errors.ts';
export {
  averagePrecisionAtR,
  defaultNs,
  type EmptyPrecision,
  type MapOptions,
  type MapResult,
  mapFromRanking,
  type PrecisionAtNOptions,
  type PrecisionAtNResult,
  type PrecisionRecallOptions,
  type PrecisionRecallResult,
  precisionAtNFromRanking,
  precisionRecallFromRanking,
  type Ranking,
  type ZeroHitConvention,
} from './metrics.ts';
export { type PerceptibilityResult, perceptibility } from './perceptibility.ts';
export {
  type ReferenceRanking,
  referenceMap,
  referencePerceptibility,
  referencePrecisionAtN,
  referencePrecisionRecall,
  referenceRank,
} from './reference.ts';
