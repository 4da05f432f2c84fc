// What an image's file name says, in one set of rules used by the reader,
// the label dictionary, the worker's routes and the command line
// (docs/SECURITY.md, "File names"): suffixes are compared case-insensitively
// (ASCII), and names derived from a name keep its case.
//
//   name              kind    stem   partners (tried in order)   sidecars
//   CT.nii.gz         Single  CT     —                           CT.nii.gz.labels.json, CT.txt
//   seg.hdr           Header  seg    seg.img, seg.img.gz         seg.hdr.labels.json, seg.txt
//   SEG.IMG.GZ        Image   SEG    SEG.HDR.GZ, SEG.HDR         SEG.IMG.GZ.labels.json, SEG.txt
//   notes             Other   notes  —                           notes.labels.json, notes.txt
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace medimg::nifti {

// How a result is written: plain NIfTI or gzip-compressed NIfTI.
enum class Container { Plain, Gzip };

enum class NameKind {
    Single,   // .nii, .nii.gz: header and data in one file
    Header,   // .hdr, .hdr.gz: the header of an Analyze/NIfTI pair
    Image,    // .img, .img.gz: the data of a pair
    Other,    // anything else (read as a single file; the bytes decide)
};

struct ImageName {
    std::string name;     // the file name itself (no folder)
    std::string stem;     // name without its image suffix ("CT" for "CT.nii.gz")
    std::string suffix;   // the suffix as written (".NII.GZ"), empty for Other
    NameKind kind = NameKind::Other;
    bool gzip_suffix = false;   // the suffix ends in .gz
};

// True when `s` ends with `suffix`, ASCII letters compared case-insensitively.
bool ends_with_ci(std::string_view s, std::string_view suffix);

// `file_name` is a name without folders (anything after the last '/' is
// used when one is given).
ImageName parse_image_name(std::string_view file_name);

// The other file of a pair, most likely first: the same compression, then
// the other. The partner's suffix takes the case of the name's first suffix
// letter (".HDR" → ".IMG", ".hdr" → ".img"). Empty unless Header or Image.
std::vector<std::string> partner_names(const ImageName& name);

// "{name}.labels.json": a JSON table of label names next to the image.
std::string json_sidecar_name(const ImageName& name);
// "{stem}.txt": an ITK-SNAP label description next to the image.
std::string txt_sidecar_name(const ImageName& name);

// The container a filtered result of this input is written in: gzip for
// .gz names and pairs, plain for .nii, gzip for anything else.
Container output_container(const ImageName& name);
// "filtered_{name}", with a pair's suffix replaced by ".nii.gz" (a pair is
// written as one gzip NIfTI file).
std::string filtered_name(const ImageName& name);

}  // namespace medimg::nifti
