fn main() {
    println!("gpuq");
}
