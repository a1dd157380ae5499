/** Where SQL dialects differ (text order, exact keys, empty strings, large values), over every backend. */
import t from 'tap';
import { overBackends } from './backends.js';
import { edgesContract } from './edges.contract.js';

overBackends(t, 'edges', edgesContract);
