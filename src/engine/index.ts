export * from './backend.js';
export * from './doctor.js';
export { cpuBfloat16Features, cpuRunsBfloat16, type GraphRuntimeStatus, graphRuntimeStatus } from './graph-runtime.js';
export * from './memory.js';
