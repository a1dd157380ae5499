/** The FAST token contract (XEP-0484) over every backend. */
import t from 'tap';
import { overBackends } from './backends.js';
import { fastTokensContract } from './fast-tokens.contract.js';

overBackends(t, 'fast-tokens', fastTokensContract);
