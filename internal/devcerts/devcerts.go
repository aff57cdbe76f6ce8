// Package devcerts writes a private certificate authority and the
// certificates of a Garo deployment on Temporal with mTLS: the frontend's,
// and a client certificate for garo server, for each agent ("agent:NAME",
// the identity Temporal's authorizer checks) and for an operator. For
// tests and first deployments; an organisation's own PKI replaces it.
package devcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Set names what to write.
type Set struct {
	// Dir receives ca.pem, ca-key.pem, and NAME.pem with NAME-key.pem for
	// each certificate.
	Dir string
	// Hosts are the frontend's names and addresses (default localhost
	// and 127.0.0.1).
	Hosts []string
	// Agents get client certificates with common name "agent:NAME", in
	// agent-NAME.pem.
	Agents []string
	// Server and Admin are the common names of garo server's and an
	// operator's client certificates (default garo-server and
	// temporal-admin), in server.pem and admin.pem.
	Server, Admin string
	// Valid is how long the certificates last (default a year).
	Valid time.Duration
}

// Write writes the set; it refuses to overwrite an existing CA.
func Write(s Set) error {
	if len(s.Hosts) == 0 {
		s.Hosts = []string{"localhost", "127.0.0.1"}
	}
	if s.Server == "" {
		s.Server = "garo-server"
	}
	if s.Admin == "" {
		s.Admin = "temporal-admin"
	}
	if s.Valid == 0 {
		s.Valid = 365 * 24 * time.Hour
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "ca.pem")); err == nil {
		return fmt.Errorf("%s already holds a CA (ca.pem): remove it to start afresh", s.Dir)
	}
	ca, caKey, err := issue(s, pkix.Name{CommonName: "Garo private CA"}, nil, nil, nil, true)
	if err != nil {
		return err
	}
	if err := save(s.Dir, "ca", ca, caKey); err != nil {
		return err
	}
	frontend, key, err := issue(s, pkix.Name{CommonName: s.Hosts[0]}, s.Hosts, ca, caKey, false)
	if err != nil {
		return err
	}
	if err := save(s.Dir, "frontend", frontend, key); err != nil {
		return err
	}
	clients := map[string]string{"server": s.Server, "admin": s.Admin}
	for _, a := range s.Agents {
		clients["agent-"+a] = "agent:" + a
	}
	for file, cn := range clients {
		cert, key, err := issue(s, pkix.Name{CommonName: cn}, nil, ca, caKey, false)
		if err != nil {
			return err
		}
		if err := save(s.Dir, file, cert, key); err != nil {
			return err
		}
	}
	return nil
}

// issue makes a certificate for subject, signed by parent (self-signed
// when nil), for hosts when set (a server certificate) or else a client.
func issue(s Set, subject pkix.Name, hosts []string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: subject, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(s.Valid),
		KeyUsage: x509.KeyUsageDigitalSignature}
	switch {
	case isCA:
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	case len(hosts) > 0:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	default:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	signer, signKey := parent, parentKey
	if parent == nil {
		signer, signKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate for %s: %w", subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// save writes NAME.pem and NAME-key.pem (readable by the owner only).
func save(dir, name string, cert *x509.Certificate, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	return errors.Join(os.WriteFile(filepath.Join(dir, name+".pem"), certPEM, 0o644),
		os.WriteFile(filepath.Join(dir, name+"-key.pem"), keyPEM, 0o600))
}
