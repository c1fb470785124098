/** Linux ABI constants (x86_64) used through the syscall layer, defined once. */

/** Address families. */
export const AF_UNSPEC = 0;
export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;

/** Socket types and creation flags. */
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_SEQPACKET = 5;
export const SOCK_NONBLOCK = 0x800;
export const SOCK_CLOEXEC = 0x80000;

/** Protocols and option levels. */
export const SOL_SOCKET = 1;
export const IPPROTO_IP = 0;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_ICMPV6 = 58;

/** SOL_SOCKET options. */
export const SO_REUSEADDR = 2;
export const SO_TYPE = 3;
export const SO_ERROR = 4;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_KEEPALIVE = 9;
export const SO_PEERCRED = 17;
export const SO_LINGER = 13;
export const SO_RCVLOWAT = 18;
export const SO_BINDTODEVICE = 25;
export const SO_PROTOCOL = 38;
export const SO_DOMAIN = 39;
export const SO_PEEK_OFF = 42;

/** IPPROTO_TCP options. */
export const TCP_NODELAY = 1;
export const TCP_MAXSEG = 2;
export const TCP_INFO = 11;
export const TCP_QUICKACK = 12;

/** IPPROTO_IP / IPPROTO_IPV6 options. */
export const IP_TTL = 2;
export const IP_PKTINFO = 8;
export const IP_RECVERR = 11;
export const IP_FREEBIND = 15;
export const IPV6_UNICAST_HOPS = 16;
export const IPV6_RECVERR = 25;
export const IPV6_V6ONLY = 26;
export const IPV6_RECVPKTINFO = 49;
export const IPV6_PKTINFO = 50;
export const IPV6_FREEBIND = 78;

/** sock_extended_err origins: the local stack, an ICMP or an ICMPv6 message. */
export const SO_EE_ORIGIN_LOCAL = 1;
export const SO_EE_ORIGIN_ICMP = 2;
export const SO_EE_ORIGIN_ICMP6 = 3;

/** Netlink: the routing protocol, and SOL_NETLINK options (acks without the request, error text, strict dumps). */
export const NETLINK_ROUTE = 0;
export const SOL_NETLINK = 270;
export const NETLINK_CAP_ACK = 10;
export const NETLINK_EXT_ACK = 11;
export const NETLINK_GET_STRICT_CHK = 12;

/** send/recv flags. */
export const MSG_PEEK = 0x2;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const MSG_WAITALL = 0x100;
export const MSG_ERRQUEUE = 0x2000;
export const MSG_NOSIGNAL = 0x4000;
export const MSG_MORE = 0x8000;

/** shutdown(2) directions. */
export const SHUT_RD = 0;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;

/** open(2) and fcntl(2). */
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0x40;
export const O_TRUNC = 0x200;
export const O_DIRECTORY = 0x10000;
export const O_PATH = 0x200000;
export const O_APPEND = 0x400;
export const O_NONBLOCK = 0x800;
export const O_CLOEXEC = 0x80000;
export const F_GETFD = 1;
export const F_SETFD = 2;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const FD_CLOEXEC = 1;
export const F_SETPIPE_SZ = 1031;
export const F_GETPIPE_SZ = 1032;

/** epoll. */
export const EPOLL_CLOEXEC = 0x80000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x1;
export const EPOLLPRI = 0x2;
export const EPOLLOUT = 0x4;
export const EPOLLERR = 0x8;
export const EPOLLHUP = 0x10;
export const EPOLLRDHUP = 0x2000;
/** EPOLLET is bit 31: as a JS number it is 2^31, which the u32 event word stores unchanged. */
export const EPOLLET = 0x80000000;

/** poll(2) events. */
export const POLLIN = 0x1;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;

/** timerfd and eventfd. */
export const CLOCK_REALTIME = 0;
export const CLOCK_MONOTONIC = 1;
export const TFD_NONBLOCK = 0x800;
export const TFD_CLOEXEC = 0x80000;
export const EFD_NONBLOCK = 0x800;
export const EFD_CLOEXEC = 0x80000;

/** splice(2). */
export const SPLICE_F_MOVE = 1;
export const SPLICE_F_NONBLOCK = 2;
export const SPLICE_F_MORE = 4;

/** Namespaces (clone flags) and prctl. */
export const CLONE_NEWNS = 0x20000;
export const CLONE_NEWUTS = 0x4000000;
export const CLONE_NEWIPC = 0x8000000;
export const CLONE_NEWUSER = 0x10000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;
export const PR_SET_PDEATHSIG = 1;
export const PR_SET_NAME = 15;
export const PR_SET_NO_NEW_PRIVS = 38;

/** Tap device ioctls and flags. */
export const TUNSETIFF = 0x400454ca;
export const TUNSETOFFLOAD = 0x400454d0;
export const TUNSETVNETHDRSZ = 0x400454d8;
export const IFF_TUN = 0x1;
export const IFF_TAP = 0x2;
export const IFF_UP = 0x1;
export const IFF_NOARP = 0x80;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
/** TUNSETOFFLOAD flags: what the reader of the tap takes (partial checksums, TSO super-frames). */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const SIOCOUTQ = 0x5411;
export const FIONREAD = 0x541b;
export const IOV_MAX = 1024;

/** inotify. */
export const IN_NONBLOCK = 0x800;
export const IN_CLOEXEC = 0x80000;
export const IN_DELETE = 0x200;
export const IN_DELETE_SELF = 0x400;
export const IN_MOVED_FROM = 0x40;
// isolation
export const PR_SET_DUMPABLE = 4;
export const PR_GET_NO_NEW_PRIVS = 39;
export const PR_GET_SECCOMP = 21;
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 0x40000;
export const MS_UNBINDABLE = 0x20000;
export const MNT_DETACH = 0x2;
export const UMOUNT_NOFOLLOW = 0x8;
export const CLOSE_RANGE_CLOEXEC = 0x4;
export const WNOHANG = 1;
export const SYS_PIVOT_ROOT = 155;
export const SYS_SECCOMP = 317;
export const SECCOMP_SET_MODE_FILTER = 1;
export const SECCOMP_FILTER_FLAG_TSYNC = 1;
export const MADV_PAGEOUT = 21;
