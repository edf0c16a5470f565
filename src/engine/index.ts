export * from './backend.js';
export * from './doctor.js';
export { cpuBfloat16Features, type GraphRuntimeStatus, graphRuntimeStatus } from './graph-runtime.js';
export * from './memory.js';
