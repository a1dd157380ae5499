export * from './types.js';
export { assertValidPassword, deriveStoredCredentials, InvalidPasswordError, isStoredCredentials } from './credentials.js';
export { createMemoryStorage, type MemoryStorageOptions } from './memory/index.js';
export { openSqliteStorage, DATABASE_FILE, StorageOpenError, type SqliteStorageOptions } from './sqlite/index.js';
export { openPostgresStorage, type PostgresStorageOptions } from './postgres/index.js';
export { openStorage, type StorageChoice } from './open.js';
