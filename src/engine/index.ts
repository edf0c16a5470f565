export * from './backend.js';
export * from './doctor.js';
export * from './memory.js';
