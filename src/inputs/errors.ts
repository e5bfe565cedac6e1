import { UserError } from '../failure.js';

/** Bad input: reported as one line, exit 1, before anything is written. */
export class InputError extends UserError {}
