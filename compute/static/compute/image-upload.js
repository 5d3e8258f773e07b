// Image upload in chunks: a multi-GiB file passes the request size limit, and the bar shows real progress.
(function () {
  const CHUNK = 4 * 1024 * 1024;
  const messages = document.getElementById("image-upload-messages").dataset;
  const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
  const uploadId = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), b => b.toString(16).padStart(2, "0")).join("");
  function send(url, data, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRFToken", csrf);
      xhr.upload.onprogress = e => e.lengthComputable && onProgress(e.loaded);
      xhr.onload = () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        xhr.status < 300 ? resolve(body) : reject(body.message || xhr.statusText);
      };
      xhr.onerror = () => reject(messages.networkError);
      xhr.send(data);
    });
  }
  document.querySelectorAll("form.image-upload").forEach(form => {
    form.addEventListener("submit", async event => {
      event.preventDefault();
      const file = form.querySelector("input[type=file]").files[0];
      if (!file) return;
      const bar = form.querySelector(".progress"), inner = bar.querySelector(".progress-bar");
      const status = form.querySelector(".upload-status");
      const id = uploadId();
      bar.classList.remove("d-none");
      const show = done => {
        const pct = Math.min(100, Math.floor(done * 100 / file.size));
        inner.style.width = pct + "%"; inner.textContent = pct + "%"; bar.setAttribute("aria-valuenow", pct);
      };
      try {
        let result = {};
        for (let offset = 0; offset < file.size; offset += CHUNK) {
          const data = new FormData();
          data.append("upload_id", id); data.append("offset", offset); data.append("total", file.size);
          data.append("filename", file.name); data.append("endpoint", form.querySelector("select").value);
          data.append("chunk", file.slice(offset, offset + CHUNK), file.name);
          result = await send(form.dataset.url, data, loaded => show(offset + loaded));
        }
        show(file.size);
        status.className = "small mt-1 upload-status text-success";
        status.textContent = messages.done + " v" + result.version;
        setTimeout(() => location.reload(), 1500);
      } catch (message) {
        status.className = "small mt-1 upload-status text-danger";
        status.textContent = message;
      }
    });
  });
})();