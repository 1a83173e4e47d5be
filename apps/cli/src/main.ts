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
import { registerServe } from './serve.js';
import { registerTrain } from './train.js';

/**
 * Commander's own errors (unknown option, missing argument, ...) in the CLI's form: one `dhta: error: ...` line
 * (its "Did you mean ...?" suggestion kept on that line) and a hint naming the command's --help.
 */
function useOneLineErrors(cmd: Command, path = 'dhta'): void {
  cmd.showHelpAfterError(false);
  cmd.configureOutput({
    outputError: (text, write) => {
      const line = text
        .trim()
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
        .join(' ');
      write(`dhta: ${line.startsWith('error') ? line : `error: ${line}`}\nhint: see ${path} --help\n`);
    },
  });
  for (const sub of cmd.commands) useOneLineErrors(sub, `${path} ${sub.name()}`);
}

const program = new Command();
program
  .name('dhta')
  .description(
    'Targeted attacks on deep-hashing retrieval (DHTA, Bai et al., ECCV 2020): models, Hamming search, ' +
      'attacks, metrics and benchmarks on WebGPU.',
  )
  .version('0.1.0')
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
registerServe(program);
useOneLineErrors(program);

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
