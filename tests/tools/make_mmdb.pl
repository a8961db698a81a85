#!/usr/bin/perl
# make_mmdb.pl OUTDIR: small MaxMind DB files for the enrichment tests, built with
# MaxMind::DB::Writer::Tree (Debian: libmaxmind-db-writer-perl); nothing is downloaded.
# One table of test networks (the documentation and benchmark ranges the fixtures use) is
# written in several schemas, so every schema must give the same answers:
#   geolite-country.mmdb  GeoLite2-Country style: country.iso_code, registered_country.iso_code
#                         (one range carries only registered_country: the fallback)
#   geolite-asn.mmdb      GeoLite2-ASN / DB-IP ASN Lite style: autonomous_system_number (uint32),
#                         autonomous_system_organization
#   ipinfo-lite.mmdb      IPinfo Lite style, country and ASN in one file: country_code,
#                         country (a name), continent_code, asn ("AS64496"), as_name, as_domain
#   ipinfo-country-asn.mmdb  IPinfo's older free country_asn.mmdb: country (the ISO code),
#                         country_name, asn ("AS64496"), as_name
#   cc-country.mmdb       single field country_code, IPv4 only (ip-location-db style)
#   numeric-asn.mmdb      single numeric field asn (uint32), as_org
# Networks without an ASN have no record in the ASN-only databases.
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my $out = shift @ARGV or die "usage: make_mmdb.pl OUTDIR\n";

# [network, country, asn (0 = none), organisation]
my @nets = (
    ['192.0.2.0/25',      'US', 64496, 'Example Transit One'],
    ['192.0.2.128/25',    'US', 64497, 'Example Transit Two'],
    ['198.51.100.0/26',   'DE', 64498, 'Beispiel Netz'],
    ['198.51.100.64/26',  'FR', 64499, 'Reseau Exemple'],
    ['198.51.100.128/25', 'GB', 64500, 'Example Hosting UK'],
    ['203.0.113.0/25',    'JP', 64501, 'Rei Net'],
    ['203.0.113.128/25',  'BR', 64502, 'Rede Exemplo'],
    ['198.18.0.0/25',     'NL', 64503, 'Voorbeeld Net'],
    ['198.18.0.128/25',   'RU', 0,     ''],
    ['198.19.0.0/16',     'KR', 64505, 'Yesi Net'],
    ['2001:db8::/33',     'SE', 64507, 'Exempel Nat'],
    ['2001:db8:8000::/33', 'CH', 64508, 'Beispiel Schweiz'],
);
# 198.18.1.0 - 198.18.255.255, one /24 each, spread over ten countries and eight ASNs the
# way a bot's random MX targets are spread over the world: 198.18.C.0/24 is country
# $spread[C % 10] in AS 64504 + C % 8 (198.18.77.0/24: KR, AS64509).
my @spread = qw(CN US DE FR GB JP BR KR SE CH);
for my $c (1 .. 255) {
    push @nets, ["198.18.$c.0/24", $spread[$c % 10], 64504 + $c % 8, "Example AS " . (64504 + $c % 8)];
}
my %names = (US => 'United States', DE => 'Germany', FR => 'France', GB => 'United Kingdom',
    JP => 'Japan', BR => 'Brazil', NL => 'Netherlands', RU => 'Russia', KR => 'South Korea',
    CN => 'China', SE => 'Sweden', CH => 'Switzerland');
my %continent = (US => 'NA', DE => 'EU', FR => 'EU', GB => 'EU', JP => 'AS', BR => 'SA',
    NL => 'EU', RU => 'EU', KR => 'AS', CN => 'AS', SE => 'EU', CH => 'EU');

my %types = (
    country => 'map', registered_country => 'map', iso_code => 'utf8_string',
    names => 'map', en => 'utf8_string',
    autonomous_system_number => 'uint32', autonomous_system_organization => 'utf8_string',
    country_code => 'utf8_string', continent_code => 'utf8_string',
    as_name => 'utf8_string', as_domain => 'utf8_string', country_name => 'utf8_string',
    as_org => 'utf8_string',
);

sub write_db {
    my ($file, $type, $ipver, $record, $typeover) = @_;
    my %t = (%types, %{ $typeover // {} });
    my $tree = MaxMind::DB::Writer::Tree->new(
        ip_version               => $ipver,
        record_size              => 24,
        database_type            => $type,
        languages                => ['en'],
        description              => { en => "spamflow test database ($file)" },
        map_key_type_callback    => sub { $t{ $_[0] } // die "no type for $_[0]\n" },
        remove_reserved_networks => 0,
        alias_ipv6_to_ipv4       => $ipver == 6 ? 1 : 0,
    );
    for my $n (@nets) {
        next if $ipver == 4 && $n->[0] =~ /:/;
        my $data = $record->(@$n);
        $tree->insert_network($n->[0], $data) if $data;
    }
    open my $fh, '>:raw', "$out/$file.tmp" or die "$out/$file.tmp: $!\n";
    $tree->write_tree($fh);
    close $fh or die "$out/$file: $!\n";
    rename "$out/$file.tmp", "$out/$file" or die "$out/$file: $!\n";
}

write_db('geolite-country.mmdb', 'GeoLite2-Country', 6, sub {
    my ($net, $cc) = @_;
    my %r = (registered_country => { iso_code => $cc, names => { en => $names{$cc} } });
    # 192.0.2.0/25: registered country only (MaxMind leaves country out for some networks)
    $r{country} = { iso_code => $cc, names => { en => $names{$cc} } }
        unless $net eq '192.0.2.0/25';
    return \%r;
});
write_db('geolite-asn.mmdb', 'GeoLite2-ASN', 6, sub {
    my ($net, $cc, $asn, $org) = @_;
    return undef unless $asn;
    return { autonomous_system_number => $asn, autonomous_system_organization => $org };
});
write_db('ipinfo-lite.mmdb', 'ipinfo lite.mmdb', 6, sub {
    my ($net, $cc, $asn, $org) = @_;
    my %r = (country_code => $cc, country => $names{$cc}, continent_code => $continent{$cc});
    if ($asn) {
        $r{asn} = "AS$asn";
        $r{as_name} = $org;
        $r{as_domain} = 'example.net';
    }
    return \%r;
}, { country => 'utf8_string', asn => 'utf8_string' });
write_db('ipinfo-country-asn.mmdb', 'ipinfo country_asn.mmdb', 6, sub {
    my ($net, $cc, $asn, $org) = @_;
    my %r = (country => $cc, country_name => $names{$cc});
    if ($asn) {
        $r{asn} = "AS$asn";
        $r{as_name} = $org;
    }
    return \%r;
}, { country => 'utf8_string', asn => 'utf8_string' });
write_db('cc-country.mmdb', 'geo-whois-asn-country', 4, sub {
    my ($net, $cc) = @_;
    return { country_code => $cc };
});
write_db('numeric-asn.mmdb', 'numeric-asn', 6, sub {
    my ($net, $cc, $asn, $org) = @_;
    return undef unless $asn;
    return { asn => $asn, as_org => $org };
}, { asn => 'uint32' });
