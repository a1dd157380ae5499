export { SCHEMA, type Config, type OptionSpec } from './schema.js';
export { loadConfig, withEnvFile, ConfigError } from './load.js';
