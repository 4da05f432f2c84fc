// Per-label intensity statistics riding along the label metadata pass
// (labels/intensity.hpp states the bounds and the precision).
#include "labels/intensity.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

#include "error.hpp"
#include "labels/chunk_reader.hpp"
#include "labels/detail.hpp"

namespace medimg::labels {
namespace {

using nifti::Header;
using nifti::TypeKind;
using json = nlohmann::ordered_json;
__extension__ typedef __int128 Wide;


// One label's accumulator. Integer images use `base`/`bins` (an exact
// histogram of stored values from `base`); float images the rest.
struct Acc {
    Wide base = 0;
    std::vector<std::uint64_t> bins;
    std::uint64_t n = 0;
    long double sum = 0, mean = 0, m2 = 0;
    double lo = std::numeric_limits<double>::infinity();
    double hi = -std::numeric_limits<double>::infinity();
};

// Bins held by every label's histogram together, against the request's
// bound ([limits] max_intensity_bins).
class Budget {
public:
    explicit Budget(std::size_t max_bins) : max_(max_bins) {}
    // Whether `more` further bins fit.
    bool fits(Wide more) const noexcept { return more <= static_cast<Wide>(max_ - used_); }
    void take(std::size_t more) {
        if (!fits(static_cast<Wide>(more))) refuse();
        used_ += more;
    }
    [[noreturn]] void refuse() const {
        throw Error(ErrorCode::TooLarge,
                    "the image's values under the labels span more than " + std::to_string(max_) +
                        " distinct stored values in all ([limits] max_intensity_bins); its "
                        "intensity statistics are refused");
    }

private:
    std::size_t max_;
    std::size_t used_ = 0;
};

// Makes `a`'s histogram cover stored value x: doubles the covered span on
// x's side when the budget allows (so growth costs amortised O(1) per bin),
// else exactly as far as x; never beyond T's range.
template <typename T>
void grow(Acc& a, Wide x, Budget& budget) {
    constexpr Wide tmin = std::numeric_limits<T>::min();
    constexpr Wide tmax = std::numeric_limits<T>::max();
    const Wide old_size = static_cast<Wide>(a.bins.size());
    Wide lo = x, hi = x;
    Wide want_lo = x, want_hi = x;
    if (!a.bins.empty()) {
        const Wide old_lo = a.base, old_hi = a.base + old_size - 1;
        lo = std::min(x, old_lo);
        hi = std::max(x, old_hi);
        want_lo = x < old_lo ? std::min(x, old_lo - old_size) : old_lo;
        want_hi = x > old_hi ? std::max(x, old_hi + old_size) : old_hi;
    } else {
        want_lo = x - 31;
        want_hi = x + 32;
    }
    want_lo = std::max(want_lo, tmin);
    want_hi = std::min(want_hi, tmax);
    if (budget.fits(want_hi - want_lo + 1 - old_size)) {
        lo = want_lo;
        hi = want_hi;
    } else if (!budget.fits(hi - lo + 1 - old_size)) {
        budget.refuse();
    }
    const Wide size = hi - lo + 1;
    budget.take(static_cast<std::size_t>(size - old_size));
    std::vector<std::uint64_t> bins(static_cast<std::size_t>(size));
    if (!a.bins.empty())
        std::memcpy(bins.data() + static_cast<std::size_t>(a.base - lo), a.bins.data(),
                    a.bins.size() * sizeof(std::uint64_t));
    a.bins = std::move(bins);
    a.base = lo;
}

// numpy's method="lower": rank floor(q * (n - 1)), q = percent / 100, in
// float64 as numpy computes it.
std::uint64_t lower_rank(double percent, std::uint64_t n) {
    const double q = percent / 100.0;
    return static_cast<std::uint64_t>(std::floor(q * static_cast<double>(n - 1)));
}

constexpr double kPercents[3] = {5, 50, 95};

double scale(const Header& h, Wide stored) {
    const double v = static_cast<double>(stored);
    return h.scaled() ? v * h.slope() + h.inter() : v;
}

std::optional<Intensity> finish_integer(const Acc& a, const Header& h) {
    std::uint64_t n = 0;
    Wide sum = 0;
    for (std::size_t i = 0; i < a.bins.size(); ++i) {
        n += a.bins[i];
        sum += static_cast<Wide>(a.bins[i]) * (a.base + static_cast<Wide>(i));
    }
    if (n == 0) return std::nullopt;
    const long double mean = static_cast<long double>(sum) / static_cast<long double>(n);
    long double m2 = 0;
    std::size_t first = a.bins.size(), last = 0;
    for (std::size_t i = 0; i < a.bins.size(); ++i) {
        if (a.bins[i] == 0) continue;
        if (first == a.bins.size()) first = i;
        last = i;
        const long double d = static_cast<long double>(a.base + static_cast<Wide>(i)) - mean;
        m2 += static_cast<long double>(a.bins[i]) * d * d;
    }
    // The stored value of ascending stored rank k.
    auto at_rank = [&](std::uint64_t k) {
        std::uint64_t seen = 0;
        for (std::size_t i = first; i <= last; ++i) {
            seen += a.bins[i];
            if (seen > k) return a.base + static_cast<Wide>(i);
        }
        return a.base + static_cast<Wide>(last);
    };
    // A negative slope reverses the order: scaled rank r is stored rank n-1-r.
    const bool reversed = h.scaled() && h.slope() < 0;
    auto percentile = [&](double pct) {
        const std::uint64_t r = lower_rank(pct, n);
        return scale(h, at_rank(reversed ? n - 1 - r : r));
    };
    const long double slope = h.scaled() ? h.slope() : 1.0L;
    const long double inter = h.scaled() ? h.inter() : 0.0L;
    Intensity s;
    s.count = n;
    s.mean = static_cast<double>(mean * slope + inter);
    s.sd = static_cast<double>(std::fabs(slope) * std::sqrt(m2 / static_cast<long double>(n)));
    const double a_lo = scale(h, a.base + static_cast<Wide>(first));
    const double a_hi = scale(h, a.base + static_cast<Wide>(last));
    s.min = std::min(a_lo, a_hi);
    s.max = std::max(a_lo, a_hi);
    s.p05 = percentile(kPercents[0]);
    s.p50 = percentile(kPercents[1]);
    s.p95 = percentile(kPercents[2]);
    return s;
}

std::size_t float_bin(const Acc& a, double v) {
    if (!(a.hi > a.lo)) return 0;
    const double k = (v - a.lo) / (a.hi - a.lo) * static_cast<double>(kFloatBins);
    return std::min(kFloatBins - 1, static_cast<std::size_t>(std::max(0.0, k)));
}

std::optional<Intensity> finish_float(const Acc& a) {
    if (a.n == 0) return std::nullopt;
    Intensity s;
    s.count = a.n;
    s.mean = static_cast<double>(a.mean);
    s.sd = static_cast<double>(std::sqrt(a.m2 / static_cast<long double>(a.n)));
    s.min = a.lo;
    s.max = a.hi;
    const double width = (a.hi - a.lo) / static_cast<double>(kFloatBins);
    auto percentile = [&](double pct) {
        const std::uint64_t r = lower_rank(pct, a.n);
        if (r == 0) return a.lo;
        if (r == a.n - 1 || !(a.hi > a.lo)) return a.hi;
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < a.bins.size(); ++i) {
            seen += a.bins[i];
            if (seen > r)
                return std::clamp(a.lo + (static_cast<double>(i) + 0.5) * width, a.lo, a.hi);
        }
        return a.hi;
    };
    s.p05 = percentile(kPercents[0]);
    s.p50 = percentile(kPercents[1]);
    s.p95 = percentile(kPercents[2]);
    return s;
}

enum class Phase { Integer, FloatFirst, FloatSecond };

// One pass's observer: for label type L and image type T, reads the image's
// chunk matching each label-map chunk and adds every voxel's value to the
// accumulator of its label (found by the raw label bits, resolved to an id
// once per distinct raw value).
template <typename L, typename T>
class Pass {
public:
    using U = nifti::raw_bits_t<L>;
    static constexpr bool kTable = sizeof(L) <= 2;

    Pass(const Header& labels, nifti::Reader& image, std::map<LabelId, Acc>& accs,
         Budget& budget, Phase phase)
        : lh_(labels), ih_(image.header()), accs_(accs), budget_(budget),
          phase_(phase), little_(ih_.byte_order() == nifti::ByteOrder::Little),
          chunks_(image, sizeof(T), "the image's voxel data") {
        if constexpr (kTable) table_.assign(std::size_t{1} << (8 * sizeof(U)), nullptr);
    }

    void operator()(const std::uint8_t* raw, std::size_t n) {
        chunks_.next(n);   // the same n voxels of the image (same dims)
        const std::uint8_t* values = chunks_.data();
        for (std::size_t i = 0; i < n; ++i) {
            U key;
            std::memcpy(&key, raw + i * sizeof(U), sizeof(U));
            Acc* a = find(key, raw + i * sizeof(U));
            if (a == skip()) continue;
            const T v = nifti::byteorder::load<T>(values + i * sizeof(T), little_);
            add(*a, v);
        }
    }

private:
    static Acc* skip() { return reinterpret_cast<Acc*>(&skip_marker_); }

    Acc* resolve(const std::uint8_t* raw_bytes, U key) {
        if (!lh_.scaled() && key == 0) return skip();
        const LabelId id = detail::id_of_raw<L>(raw_bytes, lh_);
        if (id == 0) return skip();
        return &accs_[id];
    }

    Acc* find(U key, const std::uint8_t* raw_bytes) {
        if constexpr (kTable) {
            Acc*& slot = table_[key];
            if (!slot) slot = resolve(raw_bytes, key);
            return slot;
        } else {
            if (last_ && key == last_key_) return last_;
            auto it = map_.find(key);
            if (it == map_.end()) {
                if (map_.size() >= detail::kMaxDistinctValues) detail::too_many_distinct_values();
                it = map_.emplace(key, resolve(raw_bytes, key)).first;
            }
            last_key_ = key;
            return last_ = it->second;
        }
    }

    void add(Acc& a, T v) {
        if constexpr (std::is_integral_v<T>) {
            const Wide x = v;
            const Wide off = x - a.base;
            if (off < 0 || off >= static_cast<Wide>(a.bins.size())) grow<T>(a, x, budget_);
            ++a.bins[static_cast<std::size_t>(x - a.base)];
        } else {
            const double x = ih_.scaled() ? static_cast<double>(v) * ih_.slope() + ih_.inter()
                                          : static_cast<double>(v);
            if (!std::isfinite(x)) return;
            if (phase_ == Phase::FloatFirst) {
                ++a.n;
                a.sum += x;
                if (x < a.lo) a.lo = x;
                if (x > a.hi) a.hi = x;
            } else {
                const long double d = static_cast<long double>(x) - a.mean;
                a.m2 += d * d;
                ++a.bins[float_bin(a, x)];
            }
        }
    }

    const Header& lh_;
    const Header& ih_;
    std::map<LabelId, Acc>& accs_;
    Budget& budget_;
    Phase phase_;
    bool little_;
    ChunkReader chunks_;
    std::vector<Acc*> table_;
    std::unordered_map<U, Acc*> map_;
    U last_key_ = 0;
    Acc* last_ = nullptr;
    static inline char skip_marker_ = 0;
};

void require_real_image(const Header& h) {
    const auto& t = h.datatype();
    const bool ok = (t.kind == TypeKind::Float && (t.bytes == 4 || t.bytes == 8)) ||
                    ((t.kind == TypeKind::Signed || t.kind == TypeKind::Unsigned) &&
                     (t.bytes == 1 || t.bytes == 2 || t.bytes == 4 || t.bytes == 8));
    if (!ok)
        throw Error(ErrorCode::UnsupportedDatatype,
                    "the image's datatype " + std::string(t.name) +
                        " is not a real scalar type; it has no intensity statistics");
}

std::string dims_text(const Header& h) {
    std::string s = "[";
    const int n = std::max(3, h.dim0());
    for (int i = 1; i <= n; ++i) s += (i > 1 ? "," : "") + std::to_string(h.dim(i));
    return s + "]";
}

std::string number_text(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

}  // namespace

void check_same_grid(const Header& labels, const Header& image) {
    for (int i = 1; i <= 7; ++i)
        if (labels.dim(i) != image.dim(i))
            throw Error(ErrorCode::GeometryMismatch,
                        "the image's dims " + dims_text(image) + " differ from the label map's " +
                            dims_text(labels) + "; they are not on the same grid");
    const auto a = labels.affine(), b = image.affine();
    const double ua = labels.spatial_unit_mm(), ub = image.spatial_unit_mm();
    double worst = 0;
    std::int64_t worst_ijk[3] = {0, 0, 0};
    for (int corner = 0; corner < 8; ++corner) {
        const std::int64_t ijk[3] = {(corner & 1) ? labels.dim(1) - 1 : 0,
                                     (corner & 2) ? labels.dim(2) - 1 : 0,
                                     (corner & 4) ? labels.dim(3) - 1 : 0};
        double d2 = 0;
        for (int r = 0; r < 3; ++r) {
            double pa = a[r][3], pb = b[r][3];
            for (int c = 0; c < 3; ++c) {
                pa += a[r][c] * static_cast<double>(ijk[c]);
                pb += b[r][c] * static_cast<double>(ijk[c]);
            }
            const double d = pa * ua - pb * ub;
            d2 += d * d;
        }
        const double dist = std::sqrt(d2);
        if (!(dist <= worst)) {   // NaN counts as the worst
            worst = std::isnan(dist) ? std::numeric_limits<double>::infinity() : dist;
            std::copy(ijk, ijk + 3, worst_ijk);
        }
    }
    if (!(worst <= kGridToleranceMm))
        throw Error(ErrorCode::GeometryMismatch,
                    "the image's affine places voxel (" + std::to_string(worst_ijk[0]) + "," +
                        std::to_string(worst_ijk[1]) + "," + std::to_string(worst_ijk[2]) + ") " +
                        number_text(worst) + " mm from where the label map's affine does (more than " +
                        number_text(kGridToleranceMm) + " mm); they are not on the same grid");
}

MetadataWithIntensity compute_intensity(nifti::Reader& labels, nifti::Reader& image,
                                        std::size_t max_bins) {
    const Header& lh = labels.header();
    const Header& ih = image.header();
    detail::require_label_type(lh);
    require_real_image(ih);
    check_same_grid(lh, ih);

    std::map<LabelId, Acc> accs;
    Budget budget(max_bins);
    const bool is_float = ih.datatype().kind == TypeKind::Float;
    auto run = [&](Phase phase) {
        return nifti::visit_element_type(lh.datatype(), [&](auto ltag) {
            return nifti::visit_element_type(ih.datatype(), [&](auto itag) {
                Pass<decltype(ltag), decltype(itag)> pass(lh, image, accs, budget, phase);
                return compute_metadata(labels, std::ref(pass));
            });
        });
    };
    MetadataWithIntensity out;
    out.meta = run(is_float ? Phase::FloatFirst : Phase::Integer);
    if (is_float) {
        for (auto& [id, a] : accs) {
            if (a.n == 0) continue;
            a.mean = a.sum / static_cast<long double>(a.n);
            budget.take(kFloatBins);
            a.bins.assign(kFloatBins, 0);
        }
        labels.rewind();
        image.rewind();
        run(Phase::FloatSecond);
    }
    for (const auto& [id, a] : accs) {
        auto s = is_float ? finish_float(a) : finish_integer(a, ih);
        if (s) out.intensity.emplace(id, *s);
    }
    return out;
}

void add_intensity_json(json& answer, const std::map<LabelId, Intensity>& intensity) {
    for (auto& e : answer["labels"]) {
        const LabelId id = e["id"].is_number_unsigned() ? LabelId(e["id"].get<std::uint64_t>())
                                                        : LabelId(e["id"].get<std::int64_t>());
        auto it = intensity.find(id);
        if (it == intensity.end()) {
            e["intensity"] = nullptr;
            continue;
        }
        const Intensity& s = it->second;
        e["intensity"] = {{"mean", s.mean}, {"sd", s.sd}, {"min", s.min}, {"max", s.max},
                          {"p05", s.p05}, {"p50", s.p50}, {"p95", s.p95}};
    }
}

}  // namespace medimg::labels
