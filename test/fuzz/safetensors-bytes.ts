// A safetensors file as the fuzz mutators edit it: the header as a JSON object and the data
// region as bytes, written back with any header length (a wrong one is a mutation of its own).
// Independent of src/formats: the inputs must not be shaped by the reader they test.
export interface SafetensorsParts {
  header: Record<string, any>;
  data: Uint8Array;
}

export function parseSafetensors(bytes: Uint8Array): SafetensorsParts {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  return { header, data: bytes.slice(8 + n) };
}

/** The file bytes; `headerText` replaces the JSON, `lengthDelta` skews the stored length. */
export function writeSafetensors(parts: SafetensorsParts, opts: { headerText?: string; lengthDelta?: bigint } = {}): Uint8Array {
  const json = new TextEncoder().encode(opts.headerText ?? JSON.stringify(parts.header));
  const out = new Uint8Array(8 + json.length + parts.data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(json.length) + (opts.lengthDelta ?? 0n)), true);
  out.set(json, 8);
  out.set(parts.data, 8 + json.length);
  return out;
}

/** [begin, end) of a tensor's bytes in the data region. */
export function tensorRange(parts: SafetensorsParts, name: string): [number, number] {
  const [b, e] = parts.header[name].data_offsets;
  return [b, e];
}
