#!/usr/bin/perl
# vigil_ipa.pl: report outgoing HTTP calls to a local Vigil agent (IPA
# version 2, docs/IPA.md), one UDP datagram per call, fire and forget.
#
#   2 <TAB> TIMESTAMP_MS <TAB> METHOD <TAB> URL <TAB> STATUS <TAB> DURATION_MS [<TAB> ERROR_CLASS]
#
# As a library: copy `vigil_report` and `vigil_request` into your code. As a
# program it fetches each URL given with HTTP::Tiny and reports every call:
#
#   perl vigil_ipa.pl [--ipa-host H] [--ipa-port P] [--method GET] URL...
#
# Core modules only (IO::Socket::INET, HTTP::Tiny, Time::HiRes).
use strict;
use warnings;
use IO::Socket::INET;
use HTTP::Tiny;
use Time::HiRes qw(time);

my $ipa_host = $ENV{VIGIL_IPA_HOST} // '127.0.0.1';
my $ipa_port = $ENV{VIGIL_IPA_PORT} // 51712;
my $sock;

# Sends one record; status 0 when no response came (then $error_class says why).
sub vigil_report {
    my ($method, $url, $status, $duration_ms, $error_class, $started_ms) = @_;
    $sock //= IO::Socket::INET->new(Proto => 'udp', PeerAddr => $ipa_host, PeerPort => $ipa_port) or return;
    $started_ms //= int(time() * 1000 - $duration_ms);
    $url =~ s/([\t\r\n])/sprintf('%%%02X', ord $1)/ge;
    my @fields = ('2', int($started_ms), $method, $url, int($status), sprintf('%.3f', $duration_ms < 0 ? 0 : $duration_ms));
    if (defined $error_class && length $error_class) {
        (my $token = $error_class) =~ s/[^A-Za-z0-9_.:-]/_/g;
        push @fields, substr($token, 0, 64);
    }
    my $line = join("\t", @fields);
    return if length($line) > 8192;    # the agent would drop it as oversize
    $sock->send("$line\n");           # a failure does not concern the call
}

# Makes the call with HTTP::Tiny, reports it, returns the response.
sub vigil_request {
    my ($http, $method, $url) = @_;
    my $started = time();
    my $res = $http->request($method, $url);
    my $ms = (time() - $started) * 1000;
    # HTTP::Tiny answers 599 when no response came (refused, timeout, DNS).
    if ($res->{status} == 599) {
        my $why = $res->{content} // '';
        my $class = $why =~ /refused/i ? 'connection_refused' : $why =~ /timed? ?out/i ? 'timeout' : 'transport_error';
        vigil_report($method, $url, 0, $ms, $class, int($started * 1000));
    } else {
        vigil_report($method, $url, $res->{status}, $ms, undef, int($started * 1000));
    }
    return $res;
}

unless (caller) {
    my $method = 'GET';
    my @urls;
    while (@ARGV) {
        my $a = shift @ARGV;
        if ($a eq '--ipa-host') { $ipa_host = shift @ARGV }
        elsif ($a eq '--ipa-port') { $ipa_port = shift @ARGV }
        elsif ($a eq '--method') { $method = shift @ARGV }
        else { push @urls, $a }
    }
    my $http = HTTP::Tiny->new(timeout => 10);
    for my $url (@urls) {
        my $res = vigil_request($http, $method, $url);
        printf "%s %s %d\n", $method, $url, $res->{status} == 599 ? 0 : $res->{status};
    }
}
1;
