package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/frayhq/fray"
)

// tlsFiles writes a CA and a server certificate for 127.0.0.1 signed by
// it, and returns their paths.
func tlsFiles(t *testing.T) (ca, cert, key string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fray test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server-key.pem", "EC PRIVATE KEY", keyDER)
}

// TLS and roles together: the broker, a worker and a producer, each with
// its own user, all over TLS verified against FRAY_NATS_CA; a client
// without the CA is refused.
func TestRolesOverTLS(t *testing.T) {
	ca, cert, key := tlsFiles(t)
	dir := authInit(t, "--tls-cert", cert, "--tls-key", key, "--tls-ca", ca, "--worker", "wtls")
	url := roleBroker(t, dir, "fray")
	p := userClient(t, dir, "fray-producer", url)
	if !p.NATS().TLSRequired() {
		t.Fatal("the producer's connection is not TLS")
	}
	roleWorker(t, dir, "fray", url, "wtls", p)
	out, errOut, code := runFray(t, userEnv(t, dir, "fray-producer", "FRAY_CLUSTER_SPEC="+url), time.Minute, "run", "fray.echo", "--arg", `"over tls"`, "--wait")
	if code != 0 || strings.TrimSpace(out) != `"over tls"` {
		t.Fatalf("task over TLS as the producer: exit %d, %q, %q", code, out, errOut)
	}
	_, errOut, code = runFray(t, userEnv(t, dir, "fray-viewer", "FRAY_CLUSTER_SPEC="+url), time.Minute, "submit", "--name", "x", "--", "true")
	if code == 0 || !strings.Contains(errOut, "permission denied: user fray-viewer") {
		t.Fatalf("viewer over TLS submits: exit %d, %q", code, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if c, err := fray.Connect(ctx, url, fray.WithoutEnvCredentials(), fray.WithUserPass("fray-producer", "wrong")); err == nil {
		c.Close()
		t.Fatal("a client without the CA and with a wrong password connected")
	}
}
