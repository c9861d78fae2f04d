// Development only: sign the challenge with a virtual card's key inside the browser (WebCrypto),
// as a card reader app would with the real card. The key never leaves the browser.
(function () {
  const input = document.getElementById("card-file");
  const status = document.getElementById("card-status");
  if (!input) return;
  const fromBase64 = (text) => Uint8Array.from(atob(text.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
  const toBase64 = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)));
  input.addEventListener("change", async () => {
    try {
      const text = await input.files[0].text();
      const cert = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/);
      const key = text.match(/-----BEGIN PRIVATE KEY-----([\s\S]+?)-----END PRIVATE KEY-----/);
      if (!cert || !key) throw new Error("仮想カードのファイルではありません");
      const algorithm = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
      const privateKey = await crypto.subtle.importKey("pkcs8", fromBase64(key[1]), algorithm, false, ["sign"]);
      const challenge = new TextEncoder().encode(input.dataset.challenge);
      const signature = await crypto.subtle.sign(algorithm, privateKey, challenge);
      document.getElementById("certificate").value = cert[0];
      document.getElementById("signature").value = toBase64(signature);
      status.textContent = "仮想カードで署名しました。「サインイン」を押してください。";
    } catch (error) {
      status.textContent = "署名できませんでした: " + error.message;
    }
  });
})();
