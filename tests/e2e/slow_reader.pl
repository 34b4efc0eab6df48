#!/usr/bin/perl
# slow_reader.pl: a client that stops reading a streamed completion, to show that generation
# waits for it, then reads the rest. usage: slow_reader.pl PORT BODY_JSON RESUME_FILE
# Prints "paused" once the first bytes arrived, reads nothing more until RESUME_FILE exists,
# then reads to the end and prints "read N bytes, [DONE]: yes|no".
#
# Why Perl and these socket options: on loopback the kernel sizes the server's send buffer from
# the peer's segment size (64 KiB there), up to net.ipv4.tcp_wmem's 4 MiB: room for ~25000
# SSE chunks, so with default sockets the whole generation fits in kernel buffers and never
# waits. Advertising a 536-byte segment (TCP_MAXSEG) and a 4 KiB receive buffer before
# connecting keeps both ends' buffers to tens of KiB, as on a real network. Node's net module
# cannot set either option; Perl's Socket can, and perl-base is part of every Debian system.
use strict;
use warnings;
use IO::Handle;
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF IPPROTO_TCP TCP_MAXSEG TCP_NODELAY
              inet_aton pack_sockaddr_in);

my ($port, $body, $resume) = @ARGV;
die "usage: slow_reader.pl PORT BODY_JSON RESUME_FILE\n" unless defined $resume;

socket(my $socket, PF_INET, SOCK_STREAM, 0) or die "socket: $!\n";
setsockopt($socket, SOL_SOCKET, SO_RCVBUF, 4096) or die "SO_RCVBUF: $!\n";
setsockopt($socket, IPPROTO_TCP, TCP_MAXSEG, 536) or die "TCP_MAXSEG: $!\n";
setsockopt($socket, IPPROTO_TCP, TCP_NODELAY, 1) or die "TCP_NODELAY: $!\n";
connect($socket, pack_sockaddr_in($port, inet_aton("127.0.0.1"))) or die "connect: $!\n";

my $request = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
            . "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n"
            . "Connection: close\r\n\r\n$body";
while (length $request) {
    my $sent = syswrite($socket, $request) or die "write: $!\n";
    substr($request, 0, $sent) = "";
}

my $first = "";
sysread($socket, $first, 512) or die "no reply: $!\n";
STDOUT->autoflush(1);
print "paused\n";
select(undef, undef, undef, 0.05) until -e $resume;

my ($total, $tail) = (length $first, $first);
while (1) {
    my $read = sysread($socket, my $chunk, 65536);
    die "read: $!\n" unless defined $read;
    last if $read == 0;
    $total += $read;
    $tail = substr($tail . $chunk, -80);
}
print "read $total bytes, [DONE]: ", ($tail =~ /data: \[DONE\]/ ? "yes" : "no"), "\n";
