#include "inspect/hash.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "gguf/mapping.h"
#include "gguf/writer.h"

namespace ggufscope::inspect {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

std::string Digest(HashType t, std::string_view s) {
  gguf::Result<std::string> r = DigestHex(t, Bytes(s));
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : "";
}

// Two I8 tensors whose bytes are "abc" and "a": the whole-model digests are
// those of "abca". The same file written by gguf-py and hashed by
// llama-gguf-hash gave every value used below.
gguf::GgufFile AbcFile(std::vector<std::string> names = {"abc", "a"}) {
  static const std::string kAbc = "abc", kA = "a";
  gguf::Writer w;
  EXPECT_TRUE(w.AddKv("general.architecture", gguf::Value::Str("llama")).ok());
  EXPECT_TRUE(w.AddTensor(names[0], gguf::GgmlType::kI8, {3}, Bytes(kAbc)).ok());
  EXPECT_TRUE(w.AddTensor(names[1], gguf::GgmlType::kI8, {1}, Bytes(kA)).ok());
  auto f = gguf::GgufFile::Parse(gguf::OwnBytes(*w.Serialize()));
  EXPECT_TRUE(f.ok());
  return std::move(f).value();
}

HashOptions All(bool uuid = true) {
  HashOptions o;
  o.Enable(HashType::kXxh64);
  o.Enable(HashType::kSha1);
  o.Enable(HashType::kSha256);
  if (uuid) o.Enable(HashType::kUuid);
  return o;
}

TEST(HashDigest, KnownAnswers) {
  // FIPS 180-2 appendix B.1 / A.1.
  EXPECT_EQ(Digest(HashType::kSha256, "abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Digest(HashType::kSha1, "abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(Digest(HashType::kSha256, ""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Digest(HashType::kSha1, ""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  // FIPS 180-2 B.3: one million 'a'.
  EXPECT_EQ(Digest(HashType::kSha256, std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // xxHash's reference values, seed 0, printed big-endian as llama-gguf-hash does.
  EXPECT_EQ(Digest(HashType::kXxh64, ""), "ef46db3751d8e999");
  EXPECT_EQ(Digest(HashType::kXxh64, "a"), "d24ec4f1a98c6e5b");
  EXPECT_EQ(Digest(HashType::kXxh64, "abc"), "44bc2cf5ad770999");
}

TEST(HashDigest, UuidV5MatchesPython) {
  // uuid.NAMESPACE_URL.bytes; uuid.uuid5(NAMESPACE_URL, "en.wikipedia.org/wiki/Llama.cpp")
  // is llama.cpp's namespace, so this also checks kLlamaUuidNamespace.
  constexpr std::array<uint8_t, 16> kUrl = {0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
                                            0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
  EXPECT_EQ(*UuidV5(kUrl, Bytes("en.wikipedia.org/wiki/Llama.cpp")), "ef001206-dadc-5f6d-a15f-3359e577d4e5");
  EXPECT_EQ(*UuidV5(kLlamaUuidNamespace, Bytes("")),
            Digest(HashType::kUuid, ""));
  // python3 -c "import uuid; print(uuid.uuid5(uuid.NAMESPACE_DNS, 'python.org'))" (the docs' example)
  constexpr std::array<uint8_t, 16> kDns = {0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1,
                                            0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
  EXPECT_EQ(*UuidV5(kDns, Bytes("python.org")), "886313e1-3b8a-5372-9b90-0c9aee199e5d");
  // python3 -c "import uuid; ns = uuid.UUID('ef001206-dadc-5f6d-a15f-3359e577d4e5'); print(uuid.uuid5(ns, ''))"
  // -> 6b2748e2-...: also what llama-gguf-hash --uuid prints for a file with no tensors.
  EXPECT_EQ(Digest(HashType::kUuid, ""), "6b2748e2-363e-5825-9e7a-d9b30f33ac5b");
  // ... print(uuid.uuid5(ns, 'abc'))
  EXPECT_EQ(Digest(HashType::kUuid, "abc"), "9f2200fc-45e8-5a39-9535-c3ea5c0e0cef");
}

TEST(HashModel, PerTensorAndWholeModel) {
  const gguf::GgufFile f = AbcFile();
  gguf::Result<ModelHashes> h = HashModel(f, All());
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->tensors.size(), 2u);
  EXPECT_EQ(h->tensors[0][0], "44bc2cf5ad770999");
  EXPECT_EQ(h->tensors[1][0], "d24ec4f1a98c6e5b");
  EXPECT_EQ(h->tensors[0][2], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(h->tensors[0][3].empty());  // no per-tensor uuid
  // Whole model = the tensors' bytes in file order, "abca" (llama-gguf-hash's values).
  EXPECT_EQ(h->model[0], "55518fd490600b13");
  EXPECT_EQ(h->model[1], "d15d5ef94a4ac46a41c1b7a0c25ae6b84804c9fe");
  EXPECT_EQ(h->model[2], "5c3f67b7fa84dfbe1118387cad14793929845a5bc7c0080c4d8309d37baa68d0");
  EXPECT_EQ(h->model[3], "38467026-ae4c-55a5-9c0e-45691b706bb3");
}

TEST(HashModel, ThreadCountDoesNotChangeAnything) {
  // A file with many tensors of different sizes, so lanes finish at
  // different times; the whole-model digests must still see file order.
  std::vector<std::vector<uint8_t>> data;
  gguf::Writer w;
  std::mt19937 rng(7);
  for (int i = 0; i < 40; ++i) {
    std::vector<uint8_t> d((i % 7) * 100000 + 4 * (i + 1));
    for (auto& b : d) b = static_cast<uint8_t>(rng());
    data.push_back(std::move(d));
  }
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(w.AddTensor("t" + std::to_string(i), gguf::GgmlType::kI8, {static_cast<int64_t>(data[i].size())},
                            data[i]).ok());
  }
  auto f = gguf::GgufFile::Parse(gguf::OwnBytes(*w.Serialize()));
  ASSERT_TRUE(f.ok());
  HashOptions o = All();
  o.threads = 1;
  const ModelHashes one = *HashModel(*f, o);
  std::string all;
  for (const auto& d : data) all.append(d.begin(), d.end());
  EXPECT_EQ(one.model[2], Digest(HashType::kSha256, all));
  EXPECT_EQ(one.model[3], Digest(HashType::kUuid, all));
  EXPECT_EQ(one.tensors[5][1], Digest(HashType::kSha1, std::string(data[5].begin(), data[5].end())));
  for (unsigned threads : {0u, 2u, 3u, 7u, 64u}) {
    o.threads = threads;
    const ModelHashes many = *HashModel(*f, o);
    EXPECT_EQ(many.model, one.model) << threads;
    EXPECT_EQ(many.tensors, one.tensors) << threads;
    EXPECT_LE(many.threads_used, 7u);  // never more threads than lanes
  }
}

TEST(HashModel, NoTensorsAndNoLayer) {
  gguf::Writer w;
  ASSERT_TRUE(w.AddKv("general.architecture", gguf::Value::Str("llama")).ok());
  auto f = gguf::GgufFile::Parse(gguf::OwnBytes(*w.Serialize()));
  ASSERT_TRUE(f.ok());
  HashOptions o = All();
  o.per_tensor = false;
  const ModelHashes h = *HashModel(*f, o);
  EXPECT_TRUE(h.tensors.empty());
  EXPECT_EQ(h.model[0], "ef46db3751d8e999");  // llama-gguf-hash on ggml-vocab-*.gguf prints these
  EXPECT_EQ(h.model[3], "6b2748e2-363e-5825-9e7a-d9b30f33ac5b");
  EXPECT_EQ(LlamaLines(*f, "v.gguf", o, h).size(), 4u);
}

TEST(HashLines, LlamaOrderAndFormat) {
  const gguf::GgufFile f = AbcFile();
  const HashOptions o = All();
  const std::vector<HashLine> lines = LlamaLines(f, "m.gguf", o, *HashModel(f, o));
  const std::string text = FormatLlamaManifest(lines);
  // Exactly llama-gguf-hash --all --uuid m.gguf.
  EXPECT_EQ(text,
            "xxh64     44bc2cf5ad770999  m.gguf:abc\n"
            "sha1      a9993e364706816aba3e25717850c26c9cd0d89d  m.gguf:abc\n"
            "sha256    ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  m.gguf:abc\n"
            "xxh64     d24ec4f1a98c6e5b  m.gguf:a\n"
            "sha1      86f7e437faa5a7fce15d1ddcb9eaeaea377667b8  m.gguf:a\n"
            "sha256    ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  m.gguf:a\n"
            "xxh64     55518fd490600b13  m.gguf\n"
            "sha1      d15d5ef94a4ac46a41c1b7a0c25ae6b84804c9fe  m.gguf\n"
            "sha256    5c3f67b7fa84dfbe1118387cad14793929845a5bc7c0080c4d8309d37baa68d0  m.gguf\n"
            "uuid      38467026-ae4c-55a5-9c0e-45691b706bb3  m.gguf\n");
  // Default (nothing chosen) is xxh64 only.
  const std::vector<HashLine> def = LlamaLines(f, "m.gguf", HashOptions{}, *HashModel(f, HashOptions{}));
  ASSERT_EQ(def.size(), 3u);
  EXPECT_EQ(FormatLine(def[2]), "xxh64     55518fd490600b13  m.gguf");
}

TEST(HashLines, HostileNamesAreEscaped) {
  EXPECT_EQ(ManifestName("blk.0.attn_q.weight"), "blk.0.attn_q.weight");
  EXPECT_EQ(ManifestName("/models/a:b.gguf"), "/models/a:b.gguf");
  EXPECT_EQ(ManifestName("a b\tc\nd"), "a\\x20b\\x09c\\x0ad");
  EXPECT_EQ(ManifestName("\x1b[2J"), "\\x1b[2J");
  EXPECT_EQ(ManifestName("back\\slash"), "back\\x5cslash");
  EXPECT_EQ(ManifestName("caf\xc3\xa9 \xe4\xb8\xad"), "caf\xc3\xa9\\x20\xe4\xb8\xad");  // UTF-8 kept
  EXPECT_EQ(ManifestName("\xff\xc3"), "\\xff\\xc3");                                  // invalid UTF-8
  EXPECT_EQ(ManifestName("\xc2\x9b"), "\\xc2\\x9b");                                  // U+009B, a C1 CSI
  const gguf::GgufFile f = AbcFile({"x y", "a\nsha256 0 fake"});
  const HashOptions o = All(false);
  const std::string text = FormatLlamaManifest(LlamaLines(f, "m.gguf", o, *HashModel(f, o)));
  EXPECT_NE(text.find("m.gguf:x\\x20y\n"), std::string::npos);
  EXPECT_EQ(text.find("\nsha256 0 fake"), std::string::npos);  // a name cannot forge a line
  // Escaped names round-trip through a manifest.
  const Manifest m = ParseManifest(text);
  const std::vector<HashLine> lines = LlamaLines(f, "m.gguf", o, *HashModel(f, o));
  EXPECT_EQ(CheckManifest(m, f, "m.gguf", o, lines).verdict, ManifestVerdict::kSuccess);
}

TEST(Manifest, ParsesLlamaLinesAndIgnoresTheRest) {
  const Manifest m = ParseManifest(
      "manifest  m.txt  sha256\n"                                  // a --check header: ignored
      "xxh64     44bc2cf5ad770999  m.gguf:abc\n"
      "sha256    ab  m.gguf  -  Ok\r\n"                            // --check output, CRLF
      "\n   \t \n"                                                 // blank
      "sha1\n"                                                     // type only: counts as present
      "sha1 deadbeef\n"                                            // two tokens
      "md5 0123 m.gguf\n"                                          // unknown type
      "uuid 38467026-ae4c-55a5-9c0e-45691b706bb3 m.gguf");         // no final newline
  ASSERT_EQ(m.entries.size(), 3u);
  EXPECT_EQ(m.entries[0].type, HashType::kXxh64);
  EXPECT_EQ(m.entries[0].name, "m.gguf:abc");
  EXPECT_EQ(m.entries[0].line, 2u);
  EXPECT_EQ(m.entries[1].hash, "ab");
  EXPECT_EQ(m.entries[1].name, "m.gguf");
  EXPECT_EQ(m.entries[2].type, HashType::kUuid);
  EXPECT_EQ(m.entries[2].line, 9u);
  EXPECT_TRUE(m.types_present[static_cast<size_t>(HashType::kSha1)]);
  EXPECT_EQ(m.ignored_lines, 4u);
  // The strongest type present is chosen when none was asked for.
  EXPECT_TRUE(SelectForManifest(m, HashOptions{}).Has(HashType::kSha256));
  HashOptions xx;
  xx.Enable(HashType::kXxh64);
  EXPECT_FALSE(SelectForManifest(m, xx).Has(HashType::kSha256));
}

TEST(Manifest, MalformedInputNeverCrashes) {
  EXPECT_TRUE(ParseManifest("").entries.empty());
  EXPECT_FALSE(ParseManifest("").AnyType());
  EXPECT_TRUE(ParseManifest(std::string(100000, '\n')).entries.empty());
  EXPECT_TRUE(ParseManifest(std::string("sha256\0x\0y", 10)).entries.size() == 0u);  // NUL is not a separator
  EXPECT_EQ(ParseManifest("sha256 " + std::string(1 << 20, ':') + " " + std::string(1 << 20, ':')).entries.size(), 1u);
  const gguf::GgufFile f = AbcFile();
  const HashOptions o = All();
  const std::vector<HashLine> lines = LlamaLines(f, "m.gguf", o, *HashModel(f, o));
  std::mt19937 rng(1);
  static constexpr char kAlphabet[] = "sha256xxh641uid :.\n\t\r\\\xff\0mgguf0abc-";
  const std::string alphabet(kAlphabet, sizeof kAlphabet - 1);  // with the NUL
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    const size_t n = rng() % 300;
    for (size_t i = 0; i < n; ++i) text += alphabet[rng() % alphabet.size()];
    if (round % 3 == 0) text = FormatLlamaManifest(lines).substr(0, rng() % 800) + text;
    const Manifest m = ParseManifest(text);
    const ManifestReport r = CheckManifest(m, f, "m.gguf", o, lines);
    EXPECT_EQ(r.results.size(), lines.size());
  }
  // A hostile manifest line with many colons stays cheap (suffixes are capped
  // by the longest tensor name).
  const Manifest m = ParseManifest("sha256 0 " + std::string(1 << 20, ':') + "\n");
  EXPECT_EQ(CheckManifest(m, f, "m.gguf", o, lines).verdict, ManifestVerdict::kMissingEntry);
}

class Check : public ::testing::Test {
 protected:
  Check() : f_(AbcFile()), o_(All()), lines_(LlamaLines(f_, "m.gguf", o_, *HashModel(f_, o_))) {}
  ManifestReport Run(const std::string& manifest, const std::string& path = "m.gguf") {
    const std::vector<HashLine> lines = LlamaLines(f_, path, o_, *HashModel(f_, o_));
    return CheckManifest(ParseManifest(manifest), f_, path, o_, lines);
  }
  std::string ManifestText() const { return FormatLlamaManifest(lines_); }
  gguf::GgufFile f_;
  HashOptions o_;
  std::vector<HashLine> lines_;
};

TEST_F(Check, OwnManifestMatches) {
  const ManifestReport r = Run(ManifestText());
  EXPECT_EQ(r.verdict, ManifestVerdict::kSuccess);
  EXPECT_EQ(r.manifest_model, "m.gguf");
  for (ManifestResult x : r.results) EXPECT_EQ(x, ManifestResult::kOk);
  EXPECT_EQ(ManifestResultName(r.results[0]), "Ok");
  EXPECT_EQ(ManifestVerdictName(r.verdict), "Success");
}

TEST_F(Check, AlteredTensorHashIsAMismatch) {
  std::string m = ManifestText();
  m.replace(m.find("ba7816bf"), 8, "00000000");
  const ManifestReport r = Run(m);
  EXPECT_EQ(r.verdict, ManifestVerdict::kFailure);
  EXPECT_EQ(r.results[2], ManifestResult::kMismatch);  // sha256 of tensor "abc"
  EXPECT_EQ(ManifestResultName(r.results[2]), "Mismatch");
  EXPECT_EQ(r.results[0], ManifestResult::kOk);
}

TEST_F(Check, TensorTheFileLacksIsAMismatch) {
  const ManifestReport r = Run(ManifestText() + "sha1  0123  m.gguf:blk.9.attn_q.weight\n");
  EXPECT_EQ(r.verdict, ManifestVerdict::kFailure);
  ASSERT_EQ(r.absent.size(), 1u);
  EXPECT_EQ(r.absent[0].name, "m.gguf:blk.9.attn_q.weight");
  // Not a digest we check (xxh64 only): not looked at, as llama-gguf-hash.
  HashOptions xx;
  xx.Enable(HashType::kXxh64);
  const std::vector<HashLine> lines = LlamaLines(f_, "m.gguf", xx, *HashModel(f_, xx));
  EXPECT_EQ(CheckManifest(ParseManifest(ManifestText() + "sha1 0 m.gguf:zzz\n"), f_, "m.gguf", xx, lines).verdict,
            ManifestVerdict::kSuccess);
}

TEST_F(Check, MissingLinesAreNotFoundNotFailures) {
  // Only the whole-model lines: per-tensor lines are Not Found (as in llama-gguf-hash).
  std::string m;
  for (const HashLine& l : lines_) {
    if (!l.tensor) m += FormatLine(l) + "\n";
  }
  const ManifestReport r = Run(m);
  EXPECT_EQ(r.verdict, ManifestVerdict::kSuccess);
  EXPECT_EQ(r.results[0], ManifestResult::kNotFound);
  EXPECT_EQ(ManifestResultName(r.results[0]), "Not Found");
  EXPECT_EQ(Run("sha256 00 other.gguf\n").verdict, ManifestVerdict::kMissingEntry);
  EXPECT_EQ(ManifestVerdictName(ManifestVerdict::kMissingEntry), "Manifest Missing Entry");
}

TEST_F(Check, UuidIsCheckedUnderUuid) {
  // llama-gguf-hash looks the uuid up among sha256 lines (a bug); we do not.
  const ManifestReport r = Run("uuid 38467026-AE4C-55A5-9C0E-45691B706BB3 m.gguf\n");  // case-insensitive
  EXPECT_EQ(r.results.back(), ManifestResult::kOk);
  EXPECT_EQ(r.verdict, ManifestVerdict::kSuccess);
}

TEST_F(Check, FirstEntryWins) {
  EXPECT_EQ(Run("xxh64 55518fd490600b13 m.gguf\nxxh64 0 m.gguf\n").verdict, ManifestVerdict::kSuccess);
  EXPECT_EQ(Run("xxh64 0 m.gguf\nxxh64 55518fd490600b13 m.gguf\n").verdict, ManifestVerdict::kFailure);
}

TEST_F(Check, ManifestFromAnotherDirectory) {
  // Published as "m.gguf", checked as /downloads/m.gguf: same file name.
  ManifestReport r = Run(ManifestText(), "/downloads/m.gguf");
  EXPECT_EQ(r.manifest_model, "m.gguf");
  EXPECT_EQ(r.verdict, ManifestVerdict::kSuccess);
  // Per-tensor lines alone are enough to find the model's name.
  std::string tensors_only;
  for (const HashLine& l : lines_) {
    if (l.tensor) tensors_only += FormatLine(l) + "\n";
  }
  EXPECT_EQ(Run(tensors_only, "/downloads/m.gguf").verdict, ManifestVerdict::kSuccess);
  // A different file name is not this file's manifest.
  r = Run(ManifestText(), "other.gguf");
  EXPECT_EQ(r.verdict, ManifestVerdict::kMissingEntry);
  EXPECT_EQ(r.manifest_models, std::vector<std::string>{"m.gguf"});
  // Two models in one manifest: the one with our name is used.
  std::string two = ManifestText();
  for (const HashLine& l : lines_) two += fmt::format("{:<8}  0  shard2.gguf{}\n", HashTypeName(l.type), l.name.substr(6));
  EXPECT_EQ(Run(two, "/x/m.gguf").verdict, ManifestVerdict::kSuccess);
  EXPECT_EQ(Run(two, "/x/shard2.gguf").verdict, ManifestVerdict::kFailure);
}

}  // namespace
}  // namespace ggufscope::inspect
