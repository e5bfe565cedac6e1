import * as core from '@actions/core';
import { getInputs, InputError } from './inputs.js';

/** The pre step: fails the job early, before its setup steps run, when the inputs are wrong. */
try {
  getInputs([]);
} catch (err) {
  core.setFailed(err instanceof InputError ? err.message : String(err));
}
