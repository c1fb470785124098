/**
 * The libpcap capture file format (the classic one tcpdump and Wireshark read, not pcapng): a 24-byte file
 * header, then one record per frame, a 16-byte header (time in seconds and microseconds, bytes captured, length
 * on the wire) followed by the bytes captured.
 *
 * Unlike every network format in src/wire, all fields are in the writer's byte order: readers tell it from the
 * magic number (read back as 0xd4c3b2a1, it means "swap everything"). So these functions take a DataView and
 * write in host order.
 */

/** The magic number of a file with microsecond timestamps. */
export const PCAP_MAGIC = 0xa1b2c3d4;
/** File format version written: 2.4, the only one in use. */
export const PCAP_VERSION_MAJOR = 2;
/** Minor version written. */
export const PCAP_VERSION_MINOR = 4;
/** Largest number of bytes captured per frame: longer frames are cut, their record keeping the full length. */
export const PCAP_SNAPLEN = 65535;
/** Link type of frames that start with an Ethernet II header. */
export const LINKTYPE_ETHERNET = 1;

/** Offset of the magic number in the file header. */
export const PCAP_FILE_MAGIC = 0;
/** Offset of the major version (16 bits). */
export const PCAP_FILE_VERSION_MAJOR = 4;
/** Offset of the minor version (16 bits). */
export const PCAP_FILE_VERSION_MINOR = 6;
/** Offset of the time zone correction (always 0: timestamps are UTC). */
export const PCAP_FILE_THISZONE = 8;
/** Offset of the timestamp accuracy (always 0). */
export const PCAP_FILE_SIGFIGS = 12;
/** Offset of the snapshot length. */
export const PCAP_FILE_SNAPLEN = 16;
/** Offset of the link type. */
export const PCAP_FILE_LINKTYPE = 20;
/** Length of the file header. */
export const PCAP_FILE_HLEN = 24;

/** Offset of a record's timestamp, whole seconds since the epoch. */
export const PCAP_REC_SEC = 0;
/** Offset of a record's timestamp, microseconds within the second. */
export const PCAP_REC_USEC = 4;
/** Offset of the number of bytes captured (following the record header). */
export const PCAP_REC_CAPLEN = 8;
/** Offset of the frame's length on the wire. */
export const PCAP_REC_LEN = 12;
/** Length of a record header. */
export const PCAP_REC_HLEN = 16;

/** True on a little-endian host: the byte order the file is written in. */
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Writes the file header for Ethernet frames at view[off]; returns its length. */
export function pcapFileHeaderEmit(view: DataView, off: number): number {
  const le = HOST_LITTLE_ENDIAN;
  view.setUint32(off + PCAP_FILE_MAGIC, PCAP_MAGIC, le);
  view.setUint16(off + PCAP_FILE_VERSION_MAJOR, PCAP_VERSION_MAJOR, le);
  view.setUint16(off + PCAP_FILE_VERSION_MINOR, PCAP_VERSION_MINOR, le);
  view.setInt32(off + PCAP_FILE_THISZONE, 0, le);
  view.setUint32(off + PCAP_FILE_SIGFIGS, 0, le);
  view.setUint32(off + PCAP_FILE_SNAPLEN, PCAP_SNAPLEN, le);
  view.setUint32(off + PCAP_FILE_LINKTYPE, LINKTYPE_ETHERNET, le);
  return PCAP_FILE_HLEN;
}

/**
 * Writes a record header at view[off] for a frame of len bytes seen at wall-clock time ms (milliseconds since
 * the epoch, fractional); returns the number of bytes to capture behind it (len cut to the snapshot length).
 */
export function pcapRecordEmit(view: DataView, off: number, ms: number, len: number): number {
  const le = HOST_LITTLE_ENDIAN;
  const sec = Math.floor(ms / 1000);
  // Rounding can give a full second of microseconds: keep the field below 10^6, as readers expect.
  const usec = Math.min(999_999, Math.floor((ms - sec * 1000) * 1000));
  const caplen = len < PCAP_SNAPLEN ? len : PCAP_SNAPLEN;
  view.setUint32(off + PCAP_REC_SEC, sec, le);
  view.setUint32(off + PCAP_REC_USEC, usec, le);
  view.setUint32(off + PCAP_REC_CAPLEN, caplen, le);
  view.setUint32(off + PCAP_REC_LEN, len, le);
  return caplen;
}

/** The number of captured bytes behind the record header at view[off]. */
export function pcapRecordCaplen(view: DataView, off: number): number {
  return view.getUint32(off + PCAP_REC_CAPLEN, HOST_LITTLE_ENDIAN);
}
