// Types for the parts of dns-packet (no bundled types) that loom uses: tests decode and build packets
// with it, an independent codec to check src/dns/wire.ts against.
declare module 'dns-packet' {
  export interface Question { type: string; name: string; class?: string }
  export interface Answer {
    type: string;
    name: string;
    class?: string;
    ttl?: number;
    data?: unknown;
    udpPayloadSize?: number;
    extendedRcode?: number;
    version?: number;
    flags?: number;
    options?: unknown[];
  }
  export interface Packet {
    id?: number;
    type?: 'query' | 'response';
    flags?: number;
    rcode?: string;
    opcode?: string;
    flag_qr?: boolean;
    flag_aa?: boolean;
    flag_tc?: boolean;
    flag_rd?: boolean;
    flag_ra?: boolean;
    questions?: Question[];
    answers?: Answer[];
    authorities?: Answer[];
    additionals?: Answer[];
  }
  export const AUTHORITATIVE_ANSWER: number;
  export const TRUNCATED_RESPONSE: number;
  export const RECURSION_DESIRED: number;
  export const RECURSION_AVAILABLE: number;
  export function encode(p: Packet, buf?: Buffer, offset?: number): Buffer;
  export function decode(buf: Buffer, offset?: number): Packet;
  export function streamEncode(p: Packet): Buffer;
  export function streamDecode(buf: Buffer): Packet;
  const _default: {
    encode: typeof encode;
    decode: typeof decode;
    streamEncode: typeof streamEncode;
    streamDecode: typeof streamDecode;
    AUTHORITATIVE_ANSWER: number;
    TRUNCATED_RESPONSE: number;
    RECURSION_DESIRED: number;
    RECURSION_AVAILABLE: number;
  };
  export default _default;
}
