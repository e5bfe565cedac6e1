import { getInputs, helpText, secretValues, wantsHelp } from './inputs/index.js';
import { interruptedRunWrites } from './interrupt.js';
import { makeLogger, maskSecret } from './runner.js';
import { failOrRerunAsRoot } from './privileges.js';
import { snapshot } from './commands/snapshot.js';
import { promote, pull } from './commands/transfer.js';
import { lookup } from './commands/lookup.js';

/**
 * The main step, and the command line: reads the inputs, runs the command they name, and ends every
 * failure the same way (one line, exit 1), after running itself again under sudo when the tree needs
 * root and sudo allows it.
 */
export async function run(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) {
    process.stdout.write(helpText() + '\n');
    return;
  }
  let log = makeLogger({ quiet: false });
  try {
    // Masked before the first line; the runner then hides them in every later one.
    for (const secret of secretValues(argv)) maskSecret(secret);
    const inputs = getInputs(argv);
    log = makeLogger({ quiet: inputs.quiet });
    const writesLayout =
      (inputs.mode === 'pull' && inputs.writeLayout) || (inputs.mode === 'snapshot' && inputs.dryRun);
    const movesTags = (inputs.mode === 'snapshot' && !inputs.dryRun) || inputs.mode === 'promote';
    // lookup, and a pull that only loads, write nothing an interrupt could leave half done.
    if (writesLayout || movesTags) interruptedRunWrites({ writesLayout, output: inputs.output });
    if (inputs.mode === 'snapshot') await snapshot(inputs, log);
    else if (inputs.mode === 'promote') await promote(inputs, log);
    else if (inputs.mode === 'lookup') await lookup(inputs, log);
    else await pull(inputs, log);
  } catch (err) {
    await failOrRerunAsRoot(err, log);
  }
}
