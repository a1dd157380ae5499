/** The message archive contract (XEP-0313) over every backend. */
import t from 'tap';
import { overBackends } from './backends.js';
import { archiveContract } from './archive.contract.js';

overBackends(t, 'archive', archiveContract);
