// A stand-in for the rule's host imports ('edgeauth:plugin/host@0.1.0'),
// for testing the SDK's JavaScript under Node (plugins/sdk-js/test). The
// test sets globalThis.hostMock = { now: bigint, bytes: (len) => Uint8Array,
// logs: [] }.

export function log(level, message) {
  globalThis.hostMock.logs.push(`${level}: ${message}`);
}
export function nowMs() {
  return globalThis.hostMock.now;
}
export function randomBytes(len) {
  return globalThis.hostMock.bytes(len);
}
export function httpFetch() {
  throw { tag: 'forbidden-host', val: 'none in tests' };
}
