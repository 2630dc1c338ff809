#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages covidct needs; safe to run again (it installs only what is missing).
# Run as root, or as a user with sudo. Used by the README's quick start and by .ci/run.
#
#  - libvulkan1: the Vulkan loader dawn.node (npm 'webgpu') needs.
#  - mesa-vulkan-drivers: Mesa's lavapipe, the software Vulkan driver the engine and the tests use when the
#    machine has no GPU (LLVM-compiled shaders with real shader-f16; about 15x SwiftShader's speed). Dawn needs
#    a recent Mesa: Debian 12's own (22.3) is too old, so on Debian 12 it comes from the bookworm-backports suite
#    (Mesa 25.0), enabled here with a sources entry that reuses the URI of the machine's own Debian sources.
#    Debian 13 and Ubuntu 24.04 or later ship a recent enough Mesa: the plain package.
#  - chromium: its SwiftShader Vulkan driver (the second software fallback, kept tested) and headless Chromium
#    for the browser tests.
#  - python3-numpy, python3-nibabel, python3-pydicom, dcm2niix, dcmtk, libgdcm-tools: the independent tools the
#    scan readers' tests compare against (dcmtk and gdcm decompress the compressed DICOM fixtures for pydicom).
#  - python3-torch, python3-torchvision: the PyTorch reference (weights/), the bench's PyTorch peer and its test.
#  - orthanc, orthanc-dicomweb: a real PACS with DICOMweb (QIDO-RS, WADO-RS, STOW-RS) that the DICOMweb tests start
#    themselves on 127.0.0.1 with a random port and a temporary storage folder (the package's own service is left as
#    the system has it: where services start on install, it listens on 8042 and is not used).
#  - dicom3tools: dciodvfy, the independent validator the DICOM SEG and SR outputs are checked with.
# The engine itself needs only the first two. A tool that this system's archive does not have (Ubuntu 24.04: no
# python3-torch / python3-torchvision, and Chromium only as a snap, which the deb 'chromium-browser' installs and
# which has no /usr/lib/chromium) is skipped with a warning saying what cannot run without it; the rest is installed.
set -euo pipefail

REQUIRED=(libvulkan1)
PACKAGES=(libvulkan1 chromium python3-numpy python3-nibabel python3-pydicom dcm2niix dcmtk libgdcm-tools python3-torch python3-torchvision orthanc orthanc-dicomweb dicom3tools)
MESA=mesa-vulkan-drivers
# The Mesa that Dawn accepts: Debian 12's 22.3 fails ("shaderUniform*ArrayDynamicIndexing required"); 25.0 works.
MESA_MIN_MAJOR=24

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# True if apt can install the package itself (a real package with a candidate; a name only provided by
# another package, such as Ubuntu's 'chromium' by the snap wrapper 'chromium-browser', does not count).
has_candidate() { apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" { ok = ($2 != "(none)") } END { exit !ok }'; }
# What cannot run without a package.
needed_for() {
  case "$1" in
    chromium) echo "the SwiftShader fallback and the browser tests" ;;
    python3-torch | python3-torchvision) echo "the PyTorch reference (weights/), the bench's PyTorch peer and their tests" ;;
    orthanc | orthanc-dicomweb) echo "the DICOMweb round trip tests (a real PACS)" ;;
    dicom3tools) echo "the DICOM SEG and SR validation (dciodvfy)" ;;
    *) echo "the scan readers' tests that compare against it" ;;
  esac
}
installed_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
# Major version of a Debian version string ("1:25.0.7-2~bpo12+1" -> 25).
major() { local v="${1#*:}"; echo "${v%%.*}"; }

. /etc/os-release
codename="${VERSION_CODENAME:-}"

# Prints the URI of the machine's own Debian archive: the first URI of a deb source whose suite is the release
# itself (deb822 files in sources.list.d, then one-line sources.list files), and the keyring it is signed by.
debian_archive() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v want="$codename" '
      function flush() {
        if (isdeb && uri != "" && hassuite) { print uri " " signed; found = 1; exit }
        isdeb = 0; uri = ""; hassuite = 0; signed = ""
      }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]*#/ { next }
      tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") isdeb = 1 }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == want) hassuite = 1 }
      tolower($1) == "signed-by:" && $2 ~ /^\// { signed = $2 }
      END { if (!found) flush() }
    ' "$f" | head -n 1 | grep . && return 0
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v want="$codename" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == want) { print $i; exit }
      }
    ' "$f" | head -n 1 | grep . && return 0
  done
  return 1
}

has_backports() {
  grep -rqsE "(^|[[:space:]])${codename}-backports([[:space:]]|$)" /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null
}

mesa_args=()
if [ "${ID:-}" = debian ] && [ "$codename" = bookworm ]; then
  if ! has_backports; then
    read -r uri signed < <(debian_archive) || { echo "install-deps: no Debian 'bookworm' source found in /etc/apt to derive bookworm-backports from" >&2; exit 1; }
    echo "install-deps: enabling bookworm-backports from $uri (for Mesa's lavapipe)"
    {
      echo "Types: deb"
      echo "URIs: $uri"
      echo "Suites: bookworm-backports"
      echo "Components: main"
      [ -n "${signed:-}" ] && echo "Signed-By: $signed"
    } | "${SUDO[@]}" tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
    need_update=1
  fi
  mesa_args=(-t bookworm-backports)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do installed "$pkg" || missing+=("$pkg"); done
mesa_ok=0
if installed "$MESA" && [ "$(major "$(installed_version "$MESA")")" -ge "$MESA_MIN_MAJOR" ]; then mesa_ok=1; fi

# apt's lists are refreshed when something is to be installed. Packages that the current lists have no candidate
# for (those this system's archive lacks) do not count, so that a second run here is a no-op too; with no lists at
# all (a fresh container) nothing can be judged and they are fetched.
installable=0
for pkg in "${missing[@]}"; do has_candidate "$pkg" && installable=1; done
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then installable=1; fi
if [ "$installable" = 1 ] || [ "$mesa_ok" = 0 ] || [ -n "${need_update:-}" ]; then
  "${SUDO[@]}" apt-get update -qq
fi
unavailable=()
if [ ${#missing[@]} -gt 0 ]; then
  wanted=()
  for pkg in "${missing[@]}"; do
    if has_candidate "$pkg"; then wanted+=("$pkg"); else unavailable+=("$pkg"); fi
  done
  for pkg in "${unavailable[@]}"; do
    for req in "${REQUIRED[@]}"; do
      [ "$pkg" = "$req" ] && { echo "install-deps: $pkg is not in this system's apt sources; the engine needs it" >&2; exit 1; }
    done
    echo "install-deps: warning: $pkg is not in this system's apt sources (${PRETTY_NAME:-$ID}): skipped; without it $(needed_for "$pkg") cannot run" >&2
  done
  if [ ${#wanted[@]} -gt 0 ]; then
    echo "install-deps: installing ${wanted[*]}"
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
  fi
fi
if [ "$mesa_ok" = 0 ]; then
  echo "install-deps: installing $MESA${mesa_args[*]:+ (${mesa_args[*]})}"
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${mesa_args[@]}" "$MESA" >/dev/null
  v="$(installed_version "$MESA")"
  if [ "$(major "$v")" -lt "$MESA_MIN_MAJOR" ]; then
    echo "install-deps: warning: $MESA $v is older than Mesa $MESA_MIN_MAJOR; Dawn may refuse lavapipe and the engine will use SwiftShader (slower)" >&2
  fi
fi

if installed chromium; then
  test -f /usr/lib/chromium/vk_swiftshader_icd.json || { echo "install-deps: SwiftShader ICD missing after installing chromium" >&2; exit 1; }
fi
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || { echo "install-deps: lavapipe ICD missing after installing $MESA" >&2; exit 1; }
echo "install-deps: ok (lavapipe: $MESA $(installed_version "$MESA"))${unavailable[*]:+; not available here: ${unavailable[*]}}"
