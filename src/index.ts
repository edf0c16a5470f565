/** selfsup library entry point. */
export * from './engine/index.js';
export { VERSION } from './version.js';
