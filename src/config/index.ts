export { SCHEMA, type Config, type OptionSpec } from './schema.js';
export { blankProblem, loadConfig, unknownEnvFileNames, withEnvFile, ConfigError } from './load.js';
