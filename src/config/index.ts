export { SCHEMA, type Config, type OptionSpec } from './schema.js';
export { loadConfig, unknownEnvFileNames, withEnvFile, ConfigError } from './load.js';
