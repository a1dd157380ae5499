/** The roster contract over every backend. */
import t from 'tap';
import { overBackends } from './backends.js';
import { rosterContract } from './roster.contract.js';

overBackends(t, 'roster', rosterContract);
