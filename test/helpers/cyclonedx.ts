// Checks a CycloneDX 1.6 JSON document against the official schema, as the CycloneDX library ships
// it (with the SPDX license list and JSF signature schemas it refers to), by a validator nobody here
// wrote (ajv, draft-07, with the formats the schema names).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';

const require = createRequire(import.meta.url);
const SCHEMAS = path.resolve('node_modules/@cyclonedx/cyclonedx-library/res/schema');

let validator: ((doc: unknown) => boolean) & { errors?: ErrorObject[] | null };

function compile() {
  const ajv = new Ajv({ strict: false, allErrors: true });
  (require('ajv-formats') as (a: Ajv) => Ajv)(ajv);
  // idn-email, iri-reference: draft 2019 formats the schema uses.
  (require('ajv-formats-draft2019') as (a: Ajv) => Ajv)(ajv);
  const read = (name: string) => {
    const schema = JSON.parse(readFileSync(path.join(SCHEMAS, name), 'utf8'));
    delete schema.$id; // registered under the name bom-1.6 refers to it by
    return schema;
  };
  ajv.addSchema(read('spdx.SNAPSHOT.schema.json'), 'http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json');
  ajv.addSchema(
    read('jsf-0.82.SNAPSHOT.schema.json'),
    'http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json',
  );
  const bom = JSON.parse(readFileSync(path.join(SCHEMAS, 'bom-1.6.SNAPSHOT.schema.json'), 'utf8'));
  return ajv.compile(bom);
}

/** The schema's complaints about `doc` (none when it is a valid CycloneDX 1.6 BOM). */
export function cyclonedxErrors(doc: unknown): string[] {
  validator ??= compile();
  if (validator(doc)) return [];
  return (validator.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}
