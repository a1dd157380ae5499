// Regenerates .env.example from the config schema (after `npm run build`).
import { writeFileSync } from 'node:fs';
import { renderEnvExample } from '../dist/config/env-example.js';
writeFileSync(new URL('../.env.example', import.meta.url), renderEnvExample());
