#!/usr/bin/perl
# slow_events.pl: a subscriber to GET /api/events that stops reading, so the server's queue for it
# overflows. usage: slow_events.pl PORT RESUME_FILE OUT_FILE
# Prints "subscribed LOCAL_PORT" once the first bytes arrived, reads nothing more until RESUME_FILE exists,
# then reads for 3 s (the stream never ends) into OUT_FILE and prints "read N bytes".
# The socket options are slow_reader.pl's (a 536-byte segment, a 4 KiB receive buffer), so the
# kernel's buffers hold tens of KiB, not megabytes, and the server's 64-event queue fills.
use strict;
use warnings;
use IO::Handle;
use IO::Select;
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF IPPROTO_TCP TCP_MAXSEG inet_aton pack_sockaddr_in
              unpack_sockaddr_in);

my ($port, $resume, $out) = @ARGV;
die "usage: slow_events.pl PORT RESUME_FILE OUT_FILE\n" unless defined $out;
socket(my $socket, PF_INET, SOCK_STREAM, 0) or die "socket: $!\n";
setsockopt($socket, SOL_SOCKET, SO_RCVBUF, 4096) or die "SO_RCVBUF: $!\n";
setsockopt($socket, IPPROTO_TCP, TCP_MAXSEG, 536) or die "TCP_MAXSEG: $!\n";
connect($socket, pack_sockaddr_in($port, inet_aton("127.0.0.1"))) or die "connect: $!\n";
my $request = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:$port\r\nConnection: close\r\n\r\n";
syswrite($socket, $request) == length $request or die "write: $!\n";

my $text = "";
sysread($socket, $text, 256) or die "no reply: $!\n";
STDOUT->autoflush(1);
my ($local_port) = unpack_sockaddr_in(getsockname($socket));
print "subscribed $local_port\n";
select(undef, undef, undef, 0.05) until -e $resume;

my $select = IO::Select->new($socket);
my $until = time + 3;
while (time < $until) {
    next unless $select->can_read(0.2);
    my $read = sysread($socket, my $chunk, 65536);
    last unless $read;
    $text .= $chunk;
}
open(my $file, ">", $out) or die "$out: $!\n";
print $file $text;
close($file);
print "read ", length($text), " bytes\n";
