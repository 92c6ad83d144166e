// The protobuf wire format, only as far as reading a message needs: varints, 32/64-bit fixed
// fields and length-delimited fields (strings, bytes, nested messages). SentencePiece's
// `tokenizer.model` is one such message; it has no schema to compile, so fields are read by number.

/** Wire types (the low 3 bits of a field key). */
export const WireType = { varint: 0, fixed64: 1, lengthDelimited: 2, fixed32: 5 } as const;

export interface ProtoField {
  readonly number: number;
  readonly wireType: number;
  /** varint fields: the value; past 2^53 (a negative int32 is written as 10 bytes) a bigint. */
  readonly varint: number | bigint;
  /** length-delimited fields: the bytes; fixed32/fixed64: their raw bytes. */
  readonly bytes: Uint8Array;
}

/** Thrown with the byte offset; callers turn it into a ModelFormatError naming their file. */
export class ProtoError extends Error {}

/** The fields of one message, in file order (a repeated field appears once per element). */
export function protoFields(buf: Uint8Array): ProtoField[] {
  const fields: ProtoField[] = [];
  let pos = 0;
  const varint = (): number | bigint => {
    // Exact in a double up to 7 bytes (49 bits); only longer ones (negative ints) need a bigint.
    let value = 0;
    const start = pos;
    for (let i = 0; i < 7; i++) {
      if (pos >= buf.length) throw new ProtoError(`varint runs past the end at byte ${pos}`);
      const b = buf[pos++]!;
      value += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return value;
    }
    let big = BigInt(value);
    for (let i = 7; i < 10; i++) {
      if (pos >= buf.length) throw new ProtoError(`varint runs past the end at byte ${pos}`);
      const b = buf[pos++]!;
      big |= BigInt(b & 0x7f) << BigInt(7 * i);
      if ((b & 0x80) === 0) return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
    throw new ProtoError(`varint longer than 10 bytes at byte ${start}`);
  };
  const length = (): number => {
    const n = varint();
    return typeof n === "number" ? n : -1;
  };
  const take = (n: number, what: string): Uint8Array => {
    if (!Number.isSafeInteger(n) || n < 0 || pos + n > buf.length) throw new ProtoError(`${what} of ${n} bytes at byte ${pos} runs past the end (${buf.length} bytes)`);
    const out = buf.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const none = new Uint8Array(0);
  while (pos < buf.length) {
    const key = length();
    if (key < 0) throw new ProtoError(`field key too large at byte ${pos}`);
    const number = Math.floor(key / 8);
    const wireType = key % 8;
    if (number === 0) throw new ProtoError(`field number 0 at byte ${pos}`);
    switch (wireType) {
      case WireType.varint:
        fields.push({ number, wireType, varint: varint(), bytes: none });
        break;
      case WireType.fixed64:
        fields.push({ number, wireType, varint: 0, bytes: take(8, "fixed64 field") });
        break;
      case WireType.lengthDelimited:
        fields.push({ number, wireType, varint: 0, bytes: take(length(), `field ${number}`) });
        break;
      case WireType.fixed32:
        fields.push({ number, wireType, varint: 0, bytes: take(4, "fixed32 field") });
        break;
      default:
        throw new ProtoError(`field ${number} has wire type ${wireType}, which protobuf does not define (byte ${pos})`);
    }
  }
  return fields;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A string field's text (invalid UTF-8 is an error, not replacement characters). */
export function protoString(f: ProtoField): string {
  if (f.wireType !== WireType.lengthDelimited) throw new ProtoError(`field ${f.number} should be a string but has wire type ${f.wireType}`);
  try {
    return utf8.decode(f.bytes);
  } catch {
    throw new ProtoError(`field ${f.number} is not valid UTF-8`);
  }
}

/** A float field (fixed32, little-endian). */
export function protoFloat(f: ProtoField): number {
  if (f.wireType !== WireType.fixed32) throw new ProtoError(`field ${f.number} should be a float but has wire type ${f.wireType}`);
  return new DataView(f.bytes.buffer, f.bytes.byteOffset, 4).getFloat32(0, true);
}

/** A varint field as a signed 32-bit int (int32 ids such as pad_id = -1 are written as 10-byte varints). */
export function protoInt32(f: ProtoField): number {
  if (f.wireType !== WireType.varint) throw new ProtoError(`field ${f.number} should be an integer but has wire type ${f.wireType}`);
  return Number(BigInt.asIntN(32, BigInt(f.varint)));
}
