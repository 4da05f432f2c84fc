// The NIfTI datatype table (nifti1.h NIFTI_TYPE_*, in datatype.hpp), with
// nibabel's dtype names.
#include "nifti/datatype.hpp"

namespace medimg::nifti {

bool DataType::can_hold_labels() const noexcept {
    switch (kind) {
    case TypeKind::Unsigned:
    case TypeKind::Signed: return bytes <= 8;
    case TypeKind::Float: return bytes == 4 || bytes == 8;
    default: return false;
    }
}

const DataType* find_datatype(int code) noexcept {
    for (const auto& t : kDataTypes)
        if (t.code == code) return &t;
    return nullptr;
}

}  // namespace medimg::nifti
