fn main() {
    println!("ggufs");
}
