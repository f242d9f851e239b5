// QC ratings made in a report and downloaded as the qc-ratings.tsv that `train` and `group` read
// with --exclude-file. Each rated session is an element with data-qc-participant and
// data-qc-session holding a rating control (radio buttons or a select) and a note field; the
// controls of one session (a subject shown in several mosaics) move together. Nothing leaves the
// page until the download.
(function () {
  "use strict";
  var columns = JSON.parse(document.getElementById("qc-columns").textContent);
  var button = document.getElementById("qc-download");

  function clean(text) {
    return text.replace(/[\t\r\n]+/g, " ").trim();
  }
  function rated() {
    return Array.from(document.querySelectorAll("[data-qc-participant]"));
  }
  function sessionOf(row) {
    return row.dataset.qcParticipant + "\t" + row.dataset.qcSession;
  }
  function ratingOf(row) {
    var radio = row.querySelector("input[type=radio]:checked");
    if (radio) return radio.value;
    var select = row.querySelector("select");
    return select && select.value ? select.value : null;
  }
  function noteOf(row) {
    var note = row.querySelector("input[type=text]");
    return note ? clean(note.value) : "";
  }

  // The TSV of the rated sessions, one row each, in the columns --exclude-file reads.
  function ratingsTsv() {
    var rater = clean(document.getElementById("qc-rater").value);
    var time = new Date().toISOString();
    var lines = [columns.join("\t")];
    var seen = {};
    rated().forEach(function (row) {
      var rating = ratingOf(row);
      if (!rating || seen[sessionOf(row)]) return;
      seen[sessionOf(row)] = true;
      lines.push(
        [row.dataset.qcParticipant, row.dataset.qcSession, rating, noteOf(row), rater, time].join("\t")
      );
    });
    return lines.join("\n") + "\n";
  }

  function follow(source) {
    var rating = ratingOf(source);
    var note = source.querySelector("input[type=text]");
    rated().forEach(function (row) {
      if (row === source || sessionOf(row) !== sessionOf(source)) return;
      var select = row.querySelector("select");
      if (select) select.value = rating || "";
      row.querySelectorAll("input[type=radio]").forEach(function (radio) {
        radio.checked = radio.value === rating;
      });
      var other = row.querySelector("input[type=text]");
      if (other && note) other.value = note.value;
    });
  }
  rated().forEach(function (row) {
    row.addEventListener("change", function () { follow(row); });
    row.addEventListener("input", function () { follow(row); });
  });

  window.bidsxaiRatingsTsv = ratingsTsv;
  button.addEventListener("click", function () {
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([ratingsTsv()], { type: "text/tab-separated-values" }));
    link.download = button.dataset.filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
  });
})();
