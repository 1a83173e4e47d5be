import { Command, CommanderError } from 'commander';
import { registerAttack } from './attack.js';
import { registerBench } from './bench.js';
import { registerBenchAttack } from './bench-attack.js';
import { registerData } from './data.js';
import { registerDemo } from './demo.js';
import { registerDoctor } from './doctor.js';
import { registerEncode } from './encode.js';
import { reportError } from './errors.js';
import { registerHamming } from './hamming.js';
import { registerMerge } from './merge.js';
import { registerReport } from './report.js';
import { registerReproduce } from './reproduce.js';
import { registerTrain } from './train.js';

const program = new Command();
program
  .name('dhta')
  .description(
    'Targeted attacks on deep-hashing retrieval (DHTA, Bai et al., ECCV 2020): models, Hamming search, ' +
      'attacks, metrics and benchmarks on WebGPU.',
  )
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerDoctor(program);
registerHamming(program, registerBench(program));
registerBenchAttack(program);
registerEncode(program);
registerAttack(program);
registerTrain(program);
registerData(program);
registerDemo(program);
registerMerge(program);
registerReproduce(program);
registerReport(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander already printed its message (or the help); keep its exit code.
    process.exitCode = err.exitCode;
  } else {
    process.exitCode = reportError(err);
  }
}
