/** The blocklist contract over every backend. */
import t from 'tap';
import { overBackends } from './backends.js';
import { blocklistContract } from './blocklist.contract.js';

overBackends(t, 'blocklist', blocklistContract);
