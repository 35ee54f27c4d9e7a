#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hone_fuzz::dependency_panics_unwind();
    hone_fuzz::openai::run(data)
});
