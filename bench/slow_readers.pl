#!/usr/bin/perl
# slow_readers.pl: COUNT concurrent streamed completions whose clients read very slowly, for
# bench/server_vs_llama_server.sh.
#
#   usage: slow_readers.pl PORT COUNT BODY_JSON SECONDS BYTES_PER_SECOND
#
# Opens COUNT connections to 127.0.0.1:PORT, sends POST /v1/completions with BODY_JSON on each,
# then for SECONDS reads at most BYTES_PER_SECOND bytes a second from each (a quarter every
# 0.25 s), hangs up on all of them at once and prints one summary line:
#
#   readers=N connected=N replied=N streaming=N closed_by_server=N bytes=N min=N max=N
#
# replied: readers that got an HTTP status line; streaming: readers that got at least one
# `data: {` event in what they read (with a few bytes a second, most of the window goes on the
# response headers, so this says little about the server; the script asks the servers
# themselves how far each generation got); closed_by_server: streams the server ended (or reset)
# before the hang-up.
#
# The sockets are made small on purpose: on loopback the kernel sizes a server's send buffer from
# the peer's segment size (64 KiB there) up to net.ipv4.tcp_wmem's maximum, room for a whole
# generation, so a client with default sockets never makes a server wait. A 4 KiB receive
# buffer and a 536-byte segment (TCP_MAXSEG), set before connecting, keep both ends' buffers to
# tens of KiB, as on a real network (the same reasoning as tests/e2e). Perl because Node's net
# module cannot set either option and perl-base is on every Debian system.
use strict;
use warnings;
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF IPPROTO_TCP TCP_MAXSEG TCP_NODELAY
              inet_aton pack_sockaddr_in);

my ($port, $count, $body, $seconds, $rate) = @ARGV;
die "usage: slow_readers.pl PORT COUNT BODY_JSON SECONDS BYTES_PER_SECOND\n" unless defined $rate;
my $slice = int($rate / 4) || 1;

$SIG{PIPE} = 'IGNORE';
my $request = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
            . "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n"
            . "Connection: close\r\n\r\n$body";

my @readers;
for my $i (1 .. $count) {
    my $r = { socket => undef, ok => 0, bytes => 0, head => '', closed => 0 };
    push @readers, $r;
    socket(my $s, PF_INET, SOCK_STREAM, 0) or next;
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096);
    setsockopt($s, IPPROTO_TCP, TCP_MAXSEG, 536);
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    connect($s, pack_sockaddr_in($port, inet_aton('127.0.0.1'))) or next;
    my $pending = $request;
    while (length $pending) {
        my $sent = syswrite($s, $pending);
        last unless $sent;
        substr($pending, 0, $sent) = '';
    }
    next if length $pending;
    fcntl($s, F_SETFL, fcntl($s, F_GETFL, 0) | O_NONBLOCK);
    $r->{socket} = $s;
    $r->{ok} = 1;
}

# Four rounds a second for SECONDS (select() as the sleep: Time::HiRes is not in perl-base).
my $end = time() + $seconds + 2;
for (my $round = 0; $round < $seconds * 4 && time() < $end; $round++) {
    for my $r (@readers) {
        next unless $r->{socket};
        my $read = sysread($r->{socket}, my $chunk, $slice);
        if (defined $read && $read > 0) {
            $r->{bytes} += $read;
            $r->{head} .= $chunk if length($r->{head}) < 4096;
        } elsif (defined $read || !$!{EAGAIN}) {   # the server closed the stream (or reset it)
            close $r->{socket};
            $r->{socket} = undef;
            $r->{closed} = 1;
        }
    }
    select(undef, undef, undef, 0.25);
}
close $_->{socket} for grep { $_->{socket} } @readers;   # hang up on every stream at once

my @bytes = map { $_->{bytes} } @readers;
my ($min, $max) = (sort { $a <=> $b } @bytes)[0, -1];
my $total = 0;
$total += $_ for @bytes;
printf "readers=%d connected=%d replied=%d streaming=%d closed_by_server=%d bytes=%d min=%d max=%d\n",
    $count, scalar(grep { $_->{ok} } @readers), scalar(grep { $_->{head} =~ m{^HTTP/1\.\d \d\d\d} } @readers),
    scalar(grep { $_->{head} =~ /data: \{/ } @readers), scalar(grep { $_->{closed} } @readers), $total, $min // 0, $max // 0;
